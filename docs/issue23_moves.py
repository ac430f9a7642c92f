"""Issue 23 item 1, the folder moves: a proposal, NOT applied on this branch (the door's
refactor into ptuning_core/app/ is under way on another branch and would conflict). It git-mvs
each module into its layer's package (lm/, data/, engine/, executors/, store/, app/), rewrites
every import of it once (the core's relative imports become absolute ones at the new place;
pages, ui/, app.py, tests, bench, .importlinter and README follow), fixes the two paths that
count folders from their own file, and turns the layers contract into one layer per folder.

    python docs/issue23_moves.py /path/to/a/checkout    # in a checkout; then review, commit

Tried on a copy of this branch (git archive): the 37 moves, every module imports, and
lint-imports keeps all five contracts with the folder layers (cli > app : service : api >
executors > engine > lm | data > store > config). Left for the hand after running it: tests
that name a file path (tests/test_config.py reads ptuning_core/uploads.py and service.py,
tests/test_layers.py appends to ptuning_core/precision.py, model.py, stats.py, template.py,
dataset.py and lists top-level modules for the forbidden list), the pages contract's list
(it then names modules inside packages), README's Layout text, and the other branch's
ptuning_core/app/ facades (their imports are rewritten like every other core module's).
"""
import re
import subprocess
import sys
from pathlib import Path

# module -> its new dotted path under ptuning_core (modules not named stay at the top:
# config, errors (when it exists), stats, template, profiling, lru, api, service, app/, cli)
MOVES = {
    # lm/: the frozen model and what runs a prompt through it
    "backbone": "lm.backbone", "precision": "lm.precision", "kvcache": "lm.kvcache",
    "batching": "lm.batching", "encoder": "lm.encoder", "encoding": "lm.encoding",
    "targets": "lm.targets", "verbalizer": "lm.verbalizer", "label_tokens": "lm.label_tokens",
    "model": "lm.model", "registry": "lm.registry", "cobatch": "lm.cobatch",
    "projections": "lm.projections",
    # data/: rows in, checked (the bundled sets stay in the repository's data/ folder)
    "dataset": "data.dataset", "data": "data.bundled", "hfdata": "data.hfdata",
    "uploads": "data.uploads", "leakage": "data.leakage",
    # engine/: one run, its evaluation, and the studies made of runs
    "train": "engine.train", "evaluate": "engine.evaluate", "finetune": "engine.finetune",
    "experiment": "engine.experiment", "fewshot": "engine.fewshot",
    "compare": "engine.compare", "experiments": "engine.experiments",
    "learned": "engine.learned", "portable": "engine.portable",
    # executors/ (not exec/: it would shadow the builtin in `from ptuning_core import exec`)
    "jobs": "executors.jobs", "live": "executors.live", "raybackend": "executors.raybackend",
    # store/: the recorder and everything kept on disk
    "store": "store.runs", "evalcache": "store.evalcache", "paths": "store.paths",
    "profiles": "store.profiles", "identity": "store.identity",
    # app/: the door's helpers (the facades of the other branch live here too); access (the
    # rules, no imports) stays at the top: engine.experiment checks them too
    "views": "app.views", "classroom": "app.classroom",
}
LAYERS = """[importlinter:contract:core-layers]
# Top to bottom, one package per layer (modules left at the top: config, stats, template,
# access, profiling, lru, are usable by every layer).
name = ptuning_core's layers: cli > door > executors > engine > lm, data > store > config
type = layers
containers =
    ptuning_core
layers =
    __main__
    cli
    app : service : api
    executors
    engine
    lm | data
    store
    config
"""
PACKAGES = sorted({v.split(".")[0] for v in MOVES.values()})
MOD = "|".join(sorted(MOVES, key=len, reverse=True))


def sh(*a, cwd):
    subprocess.run(a, cwd=cwd, check=True)


def new_abs(name: str) -> str:
    return "ptuning_core." + MOVES.get(name, name)


def rewrite_core(text: str) -> str:
    """Relative imports of the core -> absolute ones at the new places."""
    # from .x import a, b   /  from .x.y import z
    text = re.sub(r"^(\s*)from \.(\w+)((?:\.\w+)*) import ",
                  lambda m: f"{m.group(1)}from {new_abs(m.group(2))}{m.group(3)} import ",
                  text, flags=re.M)

    # from . import a as A, b
    def one(m):
        indent, names = m.group(1), [n.strip() for n in m.group(2).split(",")]
        out = []
        for n in names:
            base, _, alias = n.partition(" as ")
            target = new_abs(base.strip())
            pkg, _, leaf = target.rpartition(".")
            out.append(f"{indent}from {pkg} import {leaf}" +
                       (f" as {alias.strip()}" if alias else
                        (f" as {base.strip()}" if leaf != base.strip() else "")))
        return "\n".join(out)
    text = re.sub(r"^(\s*)from \. import ([\w ,]+)$", one, text, flags=re.M)
    return text


def rewrite_outside(text: str) -> str:
    """ptuning_core.x (imports, monkeypatch strings, contracts, docs) -> the new path."""
    text = re.sub(rf"\bptuning_core\.({MOD})\b", lambda m: new_abs(m.group(1)), text)
    # from ptuning_core import data as D / import registry
    def one(m):
        names = [n.strip() for n in m.group(2).split(",")]
        if not any(n.partition(" as ")[0].strip() in MOVES for n in names):
            return m.group(0)
        lines = []
        for n in names:
            base, _, alias = n.partition(" as ")
            target = new_abs(base.strip())
            pkg, _, leaf = target.rpartition(".")
            lines.append(f"{m.group(1)}from {pkg} import {leaf}" +
                         (f" as {alias.strip()}" if alias else
                          (f" as {base.strip()}" if leaf != base.strip() else "")))
        return "\n".join(lines)
    return re.sub(r"^(\s*)from ptuning_core import ([\w ,]+)$", one, text, flags=re.M)


def main(root: Path) -> None:
    core = root / "ptuning_core"
    for pkg in PACKAGES:
        (core / pkg).mkdir(exist_ok=True)
        init = core / pkg / "__init__.py"
        if not init.exists():
            init.write_text(f'"""ptuning_core.{pkg}: see README Layout."""\n')
            sh("git", "add", str(init), cwd=root)
    for old, new in MOVES.items():
        dst = core / (new.replace(".", "/") + ".py")
        sh("git", "mv", str(core / f"{old}.py"), str(dst), cwd=root)
    # once per file, old names -> new ones: absolute references first, then (in the core)
    # relative imports (rewriting twice would move ptuning_core.store to store.runs again)
    files = [*root.glob("app_pages/*.py"), *root.glob("ui/*.py"), root / "app.py",
             *root.rglob("tests/**/*.py"), *root.glob("bench/*.py"), *core.rglob("*.py"),
             root / ".importlinter", root / "README.md"]
    for f in files:
        text = rewrite_outside(f.read_text(encoding="utf-8"))
        if core in f.parents:
            text = rewrite_core(text)
        f.write_text(text, encoding="utf-8")
    # paths that counted folders from a module's own file
    bundled = core / "data" / "bundled.py"
    bundled.write_text(bundled.read_text().replace(
        'Path(__file__).resolve().parent.parent / "data"',
        'Path(__file__).resolve().parents[2] / "data"'))
    ray = core / "executors" / "raybackend.py"
    ray.write_text(ray.read_text().replace(
        '"py_modules": [str(Path(__file__).resolve().parent)]',
        '"py_modules": [str(Path(__file__).resolve().parents[1])]'))
    # the folders are the layers now
    il = root / ".importlinter"
    text = il.read_text()
    start = text.index("[importlinter:contract:core-layers]")
    end = text.index("[importlinter:contract:no-circles]")
    il.write_text(text[:start] + LAYERS + "\n" + text[end:])
    print(f"moved {len(MOVES)} modules into {', '.join(PACKAGES)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
