import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERB = '{"negative": ["terrible"], "positive": ["great"]}'


def cli(*args, env=None, timeout=600):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "ptuning_core", *args], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.real
def test_cli_run_on_the_default_model_returns_the_json_contract(tmp_path, default_backbone):
    out = tmp_path / "out"
    r = cli("run", "--model", "default", "--train", "sentiment:train", "--eval", "sentiment:test",
            "--template", "{sentence} [P*4] It was [MASK]", "--verbalizer", VERB,
            "--shots", "4", "--steps", "6", "--max-eval", "24", "--seed", "21",
            "--out", str(out), "--json", env={"PTUNING_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["model"] == "default" and res["kind"] == "causal" and res["device"] == "cpu"
    assert res["discrete"]["template"] == "{sentence} It was [MASK]"
    assert res["discrete"]["n"] == 24 and 0 <= res["discrete"]["accuracy"] <= 1
    assert res["continuous"]["template"] == "{sentence} [P*4] It was [MASK]"
    # every accuracy with its 95% interval; discrete vs continuous with an exact paired test
    for k in ("discrete", "continuous"):
        lo, hi = res[k]["ci95"]
        assert 0 <= lo <= res[k]["accuracy"] <= hi <= 1 and hi - lo > 0.1  # n=24 is wide
    p = res["paired"]
    assert 0 < p["mcnemar_p"] <= 1 and p["n"] == 24
    assert p["only_discrete_right"] >= 0 and p["only_continuous_right"] >= 0
    # the bundled sentiment set has difficulty tags: accuracy per tag, both prompts
    assert set(res["by_tag"]) == {"discrete", "continuous"}
    assert sum(v["n"] for v in res["by_tag"]["continuous"].values()) == 24
    tr = res["train"]
    assert tr["steps"] == 6 and len(tr["losses"]) == 6 and tr["seconds_per_step"] > 0
    assert tr["trainable_parameters"] > 0 and tr["path"] == "fast"
    assert len(res["nearest_tokens"]) == 4 and {"token", "cosine"} <= set(res["nearest_tokens"][0][0])
    assert Path(res["run_dir"]).is_dir() and (out / "prompt.safetensors").is_file()
    assert "6/6" in r.stderr  # progress bar on stderr, not in the JSON line
    # the run is in the store
    env = {"PTUNING_HOME": str(tmp_path / "home")}
    r2 = cli("runs", "--json", env=env)
    assert json.loads(r2.stdout)[0]["status"] == "finished"
    # export the learned prompt and import it back
    rid = json.loads(r2.stdout)[0]["id"]
    f = tmp_path / "p.safetensors"
    assert cli("export", rid, str(f), env=env).returncode == 0 and f.is_file()
    assert f.with_suffix(".json").is_file()
    r3 = cli("import", str(f), "--model", "default", env=env)
    assert r3.returncode == 0, r3.stderr
    assert len(json.loads(cli("runs", "--json", env=env).stdout)) == 2
    bad = cli("import", str(f), "--model", "gpt2", env=env)
    assert bad.returncode == 2 and "learned on 'default'" in bad.stderr


@pytest.mark.real
def test_cli_open_vocabulary_probe(tmp_path, default_backbone):
    r = cli("run", "--train", "facts-capital:train", "--eval", "facts-capital:test",
            "--template", "The capital of {subject} is [P*2] [MASK]", "--label-space", "vocab",
            "--steps", "2", "--max-eval", "10", "--json",
            env={"PTUNING_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["label_space"] == "vocab" and res["discrete"]["n"] + res["discrete"]["skipped"] == 10


@pytest.mark.parametrize("content,name,needle", [
    (b"", "e.csv", "is empty"),
    (b"sentence,label\n", "h.csv", "no data rows"),
    (b"text,label\nhello,positive\n", "m.csv", "no column 'sentence'"),
    (b"sentence,label\nhello,neutral\n", "l.csv", "not one of the verbalizer's classes"),
    (b"sentence,label\n\xff\xfe bad,positive\n", "u.csv", "not UTF-8"),
    (b"sentence,label\na,b,c\n", "r.csv", "has 3 fields"),
    (b"sentence,label\ngood,positive\nfine,positive\n", "o.csv", "training needs examples"),
])
def test_cli_bad_files_give_one_line_and_exit_2(tmp_path, content, name, needle):
    f = tmp_path / name
    f.write_bytes(content)
    r = cli("run", "--train", str(f), "--eval", str(f), "--template",
            "{sentence} [P] It was [MASK]", "--verbalizer", VERB)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,needle", [
    (["--template", "{sentence} It was"], "needs one [MASK]"),
    (["--template", "{review} {summary} [MASK]"], "no column 'summary'"),
    (["--template", "{sentence} [MASK]", "--text-fields", "sentence=nosuch"],
     "no column 'nosuch' to map from"),
    (["--template", "{sentence} [MASK]", "--steps", "0"], "steps must be"),
    (["--template", "{sentence} [MASK]", "--train", "nosuch:train"], "no such file"),
    (["--template", "{sentence} [MASK]", "--train", "sentiment:nosplit"], "no split"),
    (["--template", "{sentence} [MASK]", "--precision", "fp8"], "invalid choice: 'fp8'"),
])
def test_cli_bad_arguments(args, needle):
    base = {"--train": "sentiment:train", "--eval": "sentiment:test"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    flat = [x for kv in base.items() for x in kv]
    r = cli("run", *flat, "--verbalizer", VERB)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_cli_unknown_model_is_one_sentence_offline(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("sentence,label\ngood,positive\nbad,negative\n")
    r = cli("run", "--model", "nobody/no-such-model", "--train", str(f), "--eval", str(f),
            "--template", "{sentence} [MASK]", "--verbalizer", VERB, timeout=60,
            env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "not in the local cache" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_datasets_lists_bundled():
    r = cli("datasets", "--json")
    m = json.loads(r.stdout)
    assert {"sentiment", "topics", "pairs", "facts-capital"} <= set(m)


@pytest.mark.parametrize("ref,needle", [
    ("hf:glue/sst2", "hf:NAME[/CONFIG]:SPLIT"),
    ("hf:no-such-owner/no-such-set:train", "not in the local datasets cache"),
    ("hf:bad name:train", "not a Hugging Face dataset name"),
])
def test_cli_bad_hf_reference_is_one_line_exit_2(tmp_path, ref, needle):
    r = cli("run", "--train", ref, "--eval", ref, "--template", "{sentence} [P] It was [MASK]",
            "--verbalizer", VERB, "--json",
            env={"PTUNING_HOME": str(tmp_path / "home"), "HF_DATASETS_CACHE": str(tmp_path / "c")},
            timeout=60)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_internal_bugs_are_not_reported_as_user_errors(tmp_path, monkeypatch, capsys):
    """A bug inside a run (a plain ValueError or RuntimeError from the engine) must not come out
    as a one-line 'error:' with exit 2, while the user's own mistakes, before and during the
    run, still do."""
    from ptuning_core import cli
    from ptuning_core.engine import experiment
    from ptuning_core.lm import registry
    from tiny import tiny_causal
    bb = tiny_causal()
    bb.name = "tiny-cli-bugs"
    registry.put(bb)
    f = tmp_path / "d.csv"
    f.write_text("sentence,label\nthe movie was good,positive\nthe film was bad,negative\n"
                 "i loved the story,positive\ni hated the acting,negative\n")
    args = ["run", "--model", bb.name, "--device", "cpu", "--train", str(f), "--eval", str(f),
            "--template", "{sentence} [P] it was [MASK]", "--verbalizer", VERB, "--steps", "2",
            "--json"]
    for bug in (ValueError, RuntimeError):
        def broken(*a, **k):
            raise bug("an internal bug, not the user's")
        with monkeypatch.context() as m:
            m.setattr(experiment, "evaluate", broken)
            with pytest.raises(bug, match="internal bug"):
                cli.main(args)
        assert "error:" not in capsys.readouterr().err
    # a user error found before the run, and one found inside it (resuming an unknown run)
    assert cli.main(args[:-7] + ["--template", "{sentence} it was", *args[-5:]]) == 2
    assert "needs one [MASK]" in capsys.readouterr().err
    assert cli.main(args + ["--resume", "0123456789ab"]) == 2
    err = capsys.readouterr().err
    assert "no run 0123456789ab to resume" in err and "Traceback" not in err
    assert cli.main(args) == 0  # and the same command works when nothing is broken
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n_train"] == 4
