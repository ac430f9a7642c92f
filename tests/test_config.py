"""Every default and limit has one definition (ptuning_core/config.py): the pages, the CLI and
the benchmarks take theirs from it. These tests fail when one of them restates a value (a
literal k list, seed list, number of test examples or widget bound) instead of importing it."""
import ast
import re
from pathlib import Path

import pytest

from ptuning_core import config as C
from ptuning_core.engine.fewshot import SweepSpec
from ptuning_core.engine.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "app_pages").glob("*.py")) + sorted((ROOT / "ui").glob("*.py"))
CLI_AND_BENCH = [ROOT / "ptuning_core" / "cli.py"] + sorted((ROOT / "bench").glob("*.py"))
NUMBER_LIST = re.compile(r"^\s*\d+(\s*,\s*\d+)+\s*$")  # "4,8,16", "13, 21, 42"


def _docstrings(tree) -> set:
    """ids of the docstring nodes of a parsed file (module, classes, functions)."""
    return {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def _calls(path: Path, name: str):
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None)) \
                == name:
            yield n


def test_the_one_definition_holds_together():
    assert TrainConfig.__module__ == "ptuning_core.config"  # train.py re-exports it
    from ptuning_core.engine import train
    assert train.TrainConfig is C.TrainConfig and train.LIMITS is C.LIMITS
    assert train.ConfigError is C.ConfigError
    from ptuning_core.lm.precision import PRECISIONS
    assert PRECISIONS is C.PRECISIONS
    from ptuning_core.api import DEFAULT_SEEDS
    assert DEFAULT_SEEDS == C.SEEDS
    s = SweepSpec(dataset="sentiment")
    assert s.ks == list(C.FEWSHOT_KS) and s.seeds == list(C.SEEDS[:C.N_SEEDS])
    assert s.max_eval == C.MAX_EVAL and s.steps == TrainConfig().steps
    assert C.UI_DEFAULTS == {"shots": C.SHOTS, "max_eval": C.MAX_EVAL, "n_seeds": C.N_SEEDS}
    assert "eval_every" not in C.UI_DEFAULTS  # the Train page starts at TrainConfig's (0)
    assert C.bounds("n_seeds") == (1, len(C.SEEDS))


def test_config_imports_nothing_of_the_core():
    """config.py is the bottom layer: every module may import it, it imports none of them."""
    tree = ast.parse((ROOT / "ptuning_core" / "config.py").read_text(encoding="utf-8"))
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            assert n.level == 0 and not (n.module or "").startswith("ptuning_core"), n.module


def test_an_upload_and_a_hugging_face_dataset_start_from_the_same_templates(tmp_path,
                                                                           monkeypatch):
    from ptuning_core.data import uploads
    ctx = uploads.save(uploads.CLASS, b"text,label\ngood,pos\nbad,neg\nfine,pos\nawful,neg\n",
                       "f.csv", ["text"], "label")
    want = C.upload_templates(["text"])
    assert ctx["templates"] == want["templates"] == {
        "causal": "{text} It was [MASK]", "masked": "{text} It was [MASK] ."}
    assert ctx["ptuning_templates"] == want["ptuning_templates"] == {
        "causal": "{text} [P*4] It was [MASK]", "masked": "{text} [P*4] It was [MASK] ."}
    for f in ("data/uploads.py", "app/datasets.py"):  # the door's Hugging Face context uses it too
        src = (ROOT / "ptuning_core" / f).read_text(encoding="utf-8")
        assert "It was [MASK]" not in src and "upload_templates(" in src, f


def test_the_cli_takes_its_defaults_from_config(monkeypatch):
    from ptuning_core import cli
    got = {}
    for name in ("cmd_fewshot", "cmd_run"):
        monkeypatch.setattr(cli, name, lambda a: got.update(vars(a)) or 0)
    assert cli.main(["fewshot", "--dataset", "sentiment"]) == 0
    assert got["k"] == ",".join(map(str, C.FEWSHOT_KS))
    assert got["seeds"] == ",".join(map(str, C.SEEDS[:C.N_SEEDS]))
    assert got["max_eval"] == C.MAX_EVAL and got["steps"] == TrainConfig().steps
    got.clear()
    assert cli.main(["run", "--train", "x.csv", "--eval", "y.csv", "--template", "{t} [MASK]",
                     "--label-space", "vocab"]) == 0
    d = TrainConfig()
    for flag in ("seed", "steps", "lr", "batch_size", "encoder", "aux_weight", "eval_every",
                 "patience", "precision", "label_tokens", "label_init"):
        assert got[flag] == getattr(d, flag), flag


def _restates_a_list(vals: tuple) -> bool:
    return vals == C.FEWSHOT_KS or (len(vals) >= 2 and vals[:2] == C.SEEDS[:2])


@pytest.mark.parametrize("path", PAGES + CLI_AND_BENCH, ids=lambda p: p.name)
def test_no_page_cli_or_bench_restates_a_list_of_numbers_or_the_test_size(path):
    """The k list or the seeds written out ("4,8,16", (13, 21, ...)), or the number of test
    examples (200) as a number (in a bench: as a flag default or a slice), instead of config's
    FEWSHOT_KS / SEEDS / MAX_EVAL."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bench = path.parent.name == "bench"
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    docs = _docstrings(tree)
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and \
                NUMBER_LIST.match(n.value) and id(n) not in docs:
            if _restates_a_list(tuple(int(x) for x in n.value.split(","))):
                bad.append((n.lineno, n.value))
        elif isinstance(n, ast.Constant) and type(n.value) is int and n.value == C.MAX_EVAL:
            up = parents.get(id(n))
            if not bench or isinstance(up, ast.Slice) or (isinstance(up, ast.keyword)
                                                          and up.arg == "default"):
                bad.append((n.lineno, n.value))
        elif isinstance(n, (ast.Tuple, ast.List)) and n.elts and all(
                isinstance(e, ast.Constant) and type(e.value) is int for e in n.elts):
            vals = tuple(e.value for e in n.elts)
            if _restates_a_list(vals):
                bad.append((n.lineno, vals))
    assert not bad, f"{path.name}: restated defaults {bad}; import them from ptuning_core.config"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_no_page_writes_a_number_inputs_range_or_start(path):
    """Every number_input's and slider's bounds and starting value come from config
    (ranges.bounds, TrainConfig, SweepSpec, config's defaults), never a literal."""
    bad = []
    for call in [*_calls(path, "number_input"), *_calls(path, "slider")]:
        for a in call.args[1:] + [k.value for k in call.keywords if k.arg in
                                  ("min_value", "max_value", "value", "step")]:
            if isinstance(a, ast.Constant) and isinstance(a.value, (int, float)) \
                    and not isinstance(a.value, bool):
                bad.append((call.lineno, a.value))
    assert not bad, f"{path.name}: widget literals {bad}; use ptuning_core.config"


def _widget(at, kind, label):
    return next(w for w in getattr(at, kind) if w.label.startswith(label))


def test_the_pages_start_from_the_config_defaults(tiny_app):
    """What a student sees first on Train, Compare and Few-shot is config's values."""
    svc, page = tiny_app
    d = TrainConfig()
    at = page("app_pages/fewshot.py")
    assert _widget(at, "text_input", "k values").value == ",".join(map(str, C.FEWSHOT_KS))
    assert _widget(at, "number_input", "Seeds").value == C.N_SEEDS
    assert _widget(at, "number_input", "Seeds").max == len(C.SEEDS)
    assert _widget(at, "number_input", "Test examples").value == C.MAX_EVAL
    assert _widget(at, "number_input", "Steps per run").value == min(d.steps,
                                                                     svc.info().max_steps)
    at = page("app_pages/compare.py")
    assert _widget(at, "number_input", "k per class").value == C.SHOTS
    assert _widget(at, "number_input", "Seed").value == d.seed
    assert _widget(at, "number_input", "Test examples").value == C.MAX_EVAL
    at = page("app_pages/train.py")
    assert at.number_input(key="f_eval_every").value == d.eval_every == 0
    assert at.number_input(key="f_max_eval").value == C.MAX_EVAL
    assert at.number_input(key="f_shots").value == C.SHOTS
    assert at.number_input(key="f_seed").value == d.seed
    assert at.number_input(key="f_batch").value == d.batch_size
    assert at.selectbox(key="f_enc").value == d.encoder
    assert at.selectbox(key="f_precision").value == d.precision
