"""The layer contracts (.importlinter, run by `make test` before pytest): they hold on this
tree, and they break, naming the import, on a copy of the tree where a page reaches the engine,
a low layer imports a high one, the core imports streamlit or two modules import each other."""
import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ptuning_core", "app_pages", "ui")
# What pages and ui/ may import of the core (everything else is in the forbidden list).
DOOR = {"api", "service", "app", "config", "stats"}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), "lint-imports is missing: pip install -r requirements-dev.txt"
    return subprocess.run([str(exe), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def tree(tmp_path):
    """A copy of the three packages' sources and the contracts, to break on purpose."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")


def test_the_contracts_hold_on_this_tree():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout and "BROKEN" not in r.stdout
    assert r.stdout.count(" KEPT") == 5, r.stdout


def test_a_page_that_imports_the_engine_breaks_the_door_contract(tree):
    assert lint_imports(tree).returncode == 0  # the copy itself is clean
    append(tree / "app_pages" / "train.py", "from ptuning_core.lm.model import PromptModel")
    r = lint_imports(tree)
    assert r.returncode != 0
    assert "app_pages and ui import only the door, api, config and stats of ptuning_core " \
           "BROKEN" in r.stdout, r.stdout
    assert "app_pages is not allowed to import ptuning_core.lm" in r.stdout, r.stdout
    assert "app_pages.train -> ptuning_core.lm.model" in r.stdout, r.stdout
    assert "1 broken" in r.stdout  # the others still hold


def test_ui_reaching_the_queue_breaks_it_too(tree):
    append(tree / "ui" / "common.py", "import ptuning_core.executors.jobs")
    r = lint_imports(tree)
    assert r.returncode != 0 and "ui.common -> ptuning_core.executors.jobs" in r.stdout, r.stdout
    assert "1 broken" in r.stdout


def test_a_low_layer_importing_a_high_one_breaks_the_layers(tree):
    append(tree / "ptuning_core" / "lm" / "precision.py",
           "from ptuning_core.executors import jobs  # noqa")
    r = lint_imports(tree)
    assert r.returncode != 0
    assert "ptuning_core.lm is not allowed to import ptuning_core.executors" in r.stdout, r.stdout
    assert "ptuning_core.lm.precision -> ptuning_core.executors.jobs" in r.stdout, r.stdout
    # the folders are the layers, so an arrow up is also a circle between two of them
    assert "2 broken" in r.stdout and "- .lm -> .executors" in r.stdout, r.stdout


def test_the_core_importing_streamlit_breaks(tree):
    append(tree / "ptuning_core" / "stats.py", "import streamlit  # noqa")
    r = lint_imports(tree)
    assert r.returncode != 0 and "1 broken" in r.stdout, r.stdout
    assert "ptuning_core never imports streamlit BROKEN" in r.stdout
    assert "ptuning_core.stats -> streamlit" in r.stdout, r.stdout


def test_the_core_importing_ui_breaks(tree):
    append(tree / "ptuning_core" / "template.py", "import ui.common  # noqa")
    r = lint_imports(tree)
    assert r.returncode != 0
    assert "ptuning_core is not allowed to import ui" in r.stdout, r.stdout
    assert "ptuning_core.template -> ui.common" in r.stdout, r.stdout


def test_an_import_circle_breaks(tree):
    append(tree / "ptuning_core" / "data" / "dataset.py",
           "from ptuning_core.data import bundled  # noqa")
    r = lint_imports(tree)
    assert r.returncode != 0
    assert "No cycles are allowed in ptuning_core" in r.stdout, r.stdout


def test_every_module_of_the_core_is_either_the_door_or_forbidden_to_pages():
    """A new module of ptuning_core must be added to the pages' forbidden list (or be the door):
    the list is explicit, so it must be complete."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    listed = {m.strip().removeprefix("ptuning_core.") for m in
              cfg["importlinter:contract:pages-through-the-door"]["forbidden_modules"].split()}
    core = ROOT / "ptuning_core"
    modules = {p.stem for p in core.glob("*.py") if p.stem != "__init__"} | \
              {p.parent.name for p in core.glob("*/__init__.py")} | {"app.views"}
    missing = modules - listed - DOOR
    assert not missing, f"add to .importlinter's pages-through-the-door: {sorted(missing)}"
    assert not listed & DOOR
    assert not listed - modules, f"no such module: {sorted(listed - modules)}"
