"""Use a learned prompt without its encoder: ``eval`` and ``predict`` on runs and prompt files
(tiny models; the CLI driven in-process)."""
import json

import pytest
import torch

from ptuning_core import cli

from ptuning_core.lm import registry
from ptuning_core.engine.experiment import RunSpec, submit_and_run
from ptuning_core.engine.learned import load_prompt, predict, prompt_model
from ptuning_core.engine.portable import FORMAT, export_prompt, import_prompt
from ptuning_core.store.runs import RunStore, atomic_save
from ptuning_core.engine.train import TrainConfig
from tiny import tiny_causal, tiny_masked

VERB = {"negative": ["terrible"], "positive": ["great"]}
MAX_EVAL = 30


@pytest.fixture(scope="module")
def tiny_models():
    made = {}
    for kind, build in (("causal", tiny_causal), ("masked", tiny_masked)):
        bb = build()
        bb.name = f"tiny-learned-{kind}"
        registry.put(bb)
        made[kind] = bb
    yield made
    for bb in made.values():
        registry.unload(bb.name, "cpu")


def train_run(bb, **kw):
    tpl = "{sentence} [P*2] It was [MASK]" + (" ." if bb.kind == "masked" else "")
    spec = RunSpec(template=tpl, train="sentiment:train", eval="sentiment:test", verbalizer=VERB,
                   model=bb.name, shots=4, max_eval=MAX_EVAL, device="cpu",
                   train_cfg=TrainConfig(steps=6, batch_size=4, lr=0.05, snapshot_every=0), **kw)
    store = RunStore()  # $PTUNING_HOME: the test's own folder, where the CLI looks too
    res = submit_and_run(spec, store)
    rid = store.list()[0]["id"]
    return store, rid, res


def run_cli(capsys, *args):
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_eval_on_the_runs_own_data_reproduces_its_accuracy_exactly(tiny_models, capsys, kind):
    store, rid, res = train_run(tiny_models[kind])
    t = store.tensors(rid)
    assert not torch.allclose(t["embeddings"], t["init"])  # the prompt moved: not vacuous
    (store.run_dir(rid) / "encoder.safetensors").unlink()  # never needed
    for args in (["--eval", "sentiment:test", "--max-eval", str(MAX_EVAL)], []):
        code, out, err = run_cli(capsys, "eval", rid, *args, "--json")
        assert code == 0, err
        ev = last_json(out)
        for block in ("discrete", "continuous"):
            assert ev[block] == res[block], block  # accuracy, ci95, n, skipped, macro-F1
        assert ev["continuous"]["n"] == MAX_EVAL
        assert ev["paired"] == res["paired"] and ev["by_tag"] == res["by_tag"]
        assert ev["by_tag"] and set(ev["by_tag"]) == {"discrete", "continuous"}
        assert ev["train"] is None and ev["model"] == res["model"] and ev["kind"] == kind
    # every example's class probabilities are the run's, one by one
    lp = load_prompt(rid, store)
    pm = prompt_model(lp, tiny_models[kind])
    preds = store.get(rid)["result"]["details"]["continuous"]["predictions"]
    for p in preds[:8]:
        got = predict(lp, pm, {"sentence": p["text"]})
        assert {k: round(v, 4) for k, v in zip(got.labels, got.probs)} == p["probs"]
    # another slice of the data is another measurement
    code, out, _ = run_cli(capsys, "eval", rid, "--eval", "sentiment:test", "--max-eval", "7",
                           "--json")
    assert code == 0 and last_json(out)["continuous"]["n"] == 7


def test_text_output_of_eval(tiny_models, capsys):
    _, rid, res = train_run(tiny_models["causal"])
    code, out, _ = run_cli(capsys, "eval", rid)
    assert code == 0
    assert f"n={MAX_EVAL}" in out and "continuous" in out and "McNemar" in out
    assert f"prompt {rid} on sentiment:test (first {MAX_EVAL})" in out


def test_predict_from_an_exported_file_without_the_encoder(tiny_models, capsys, tmp_path):
    store, rid, _ = train_run(tiny_models["causal"])
    pred = store.get(rid)["result"]["details"]["continuous"]["predictions"][0]
    f = export_prompt(store, rid, tmp_path / "p.safetensors")
    store.delete(rid)  # the run, its encoder weights and all: only the file is left
    assert not (store.run_dir(rid)).exists()
    code, out, err = run_cli(capsys, "predict", f, "--text", pred["text"], "--json")
    assert code == 0, err
    got = last_json(out)
    assert got["label_space"] == "classes" and set(got["probs"]) == set(VERB)
    assert {k: round(v, 4) for k, v in got["probs"].items()} == pred["probs"]
    assert got["prediction"] == pred["pred"]
    # the same through an import (an imported run has no encoder either), and as text
    new = import_prompt(store, f, backbone=tiny_models["causal"])
    assert not (store.run_dir(new) / "encoder.safetensors").exists()
    code, out, _ = run_cli(capsys, "predict", new, "--field", f"sentence={pred['text']}")
    assert code == 0
    assert out.splitlines()[0] == f"prediction: {pred['pred']}"
    assert any(line.split()[0] == "positive" for line in out.splitlines()[1:])
    # an imported file evaluates like its run (without --eval it does not know its data)
    code, out, _ = run_cli(capsys, "eval", f, "--eval", "sentiment:test", "--max-eval", "5",
                           "--json")
    assert code == 0 and last_json(out)["continuous"]["n"] == 5
    code, _, err = run_cli(capsys, "eval", f)
    assert code == 2 and "give --eval" in err


def prompt_file(path, template, model, verbalizer=None, rows=2, dim=32, **meta):
    torch.manual_seed(0)
    emb = torch.randn(rows, dim)
    m = {"format": FORMAT, "template": template, "model": model, "verbalizer": verbalizer,
         "label_field": "label", **meta}
    atomic_save({"embeddings": emb, "init": emb}, path, {"ptuning": json.dumps(m)})
    return str(path)


def test_several_fields_and_open_vocabulary(tiny_models, capsys, tmp_path):
    name = tiny_models["causal"].name
    two = prompt_file(tmp_path / "two.safetensors", "{premise} ? [P*2] {hypothesis} [MASK]",
                      name, {"no": ["no"], "yes": ["yes"]})
    code, out, err = run_cli(capsys, "predict", two, "--field", "premise=the film was fine",
                             "--field", "hypothesis=it was good", "--json")
    assert code == 0, err
    got = last_json(out)
    assert list(got["probs"]) == ["no", "yes"] and abs(sum(got["probs"].values()) - 1) < 1e-5
    vocab = prompt_file(tmp_path / "vocab.safetensors", "the capital of {subject} is [P*2] [MASK]",
                        name)
    code, out, err = run_cli(capsys, "predict", vocab, "--text", "france", "--json")
    assert code == 0, err
    top = last_json(out)["top"]
    probs = [t["prob"] for t in top]
    assert len(top) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1


@pytest.mark.parametrize("make_args,needle", [
    (lambda d: ["predict", "0123456789ab", "--text", "x"], "no run 0123456789ab"),
    (lambda d: ["predict", "nosuchrun", "--text", "x"], "no run nosuchrun"),
    (lambda d: ["predict", str(d / "missing.safetensors"), "--text", "x"], "no such file"),
    (lambda d: ["eval", str(d / "junk.safetensors"), "--eval", "sentiment:test"],
     "not a valid safetensors file"),
    (lambda d: ["predict", str(d / "p.safetensors"), "--text", "x", "--model", "gpt2"],
     "learned on 'tiny-learned-causal', not 'gpt2'"),
    (lambda d: ["predict", str(d / "wide.safetensors"), "--text", "x"],
     "embedding size 48 does not match the model's 32"),
    (lambda d: ["predict", str(d / "two.safetensors"), "--text", "x"],
     "has 2 fields (premise, hypothesis): give each with --field NAME=VALUE"),
    (lambda d: ["predict", str(d / "two.safetensors"), "--field", "premise=a film"],
     "hypothesis is missing"),
    (lambda d: ["predict", str(d / "p.safetensors"), "--field", "review=good"],
     "no field 'review'; its fields are sentence"),
    (lambda d: ["predict", str(d / "p.safetensors")], "sentence is missing"),
    (lambda d: ["predict", str(d / "p.safetensors"), "--field", "sentence"], "not NAME=VALUE"),
    (lambda d: ["eval", str(d / "p.safetensors"), "--eval", "topics:test"],
     "not one of the verbalizer's classes"),
    (lambda d: ["eval", str(d / "p.safetensors"), "--eval", "nosuch:test"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_models, capsys, tmp_path, make_args, needle):
    name = tiny_models["causal"].name
    prompt_file(tmp_path / "p.safetensors", "{sentence} [P*2] It was [MASK]", name, VERB)
    prompt_file(tmp_path / "wide.safetensors", "{sentence} [P*2] It was [MASK]", name, VERB,
                dim=48)
    prompt_file(tmp_path / "two.safetensors", "{premise} ? [P*2] {hypothesis} [MASK]", name,
                {"no": ["no"], "yes": ["yes"]})
    (tmp_path / "junk.safetensors").write_bytes(b"\x00not safetensors at all")
    code, out, err = run_cli(capsys, *make_args(tmp_path))
    assert code == 2, (out, err)
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_run_without_a_learned_prompt(capsys):
    store = RunStore()
    rid = store.create("discrete only", {"template": "{sentence} It was [MASK]"},
                       status="finished")
    code, _, err = run_cli(capsys, "predict", rid, "--text", "fine")
    assert code == 2 and f"run {rid} has no learned prompt" in err
