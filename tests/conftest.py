import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# precision "auto" is fp32 in the tests on every machine (CLI subprocesses included); the bf16
# path has its own tests (test_precision.py)
os.environ.setdefault("PTUNING_CPU_BF16", "0")
# Models are cached where the user keeps them (so the GGUF is converted once per machine);
# runs and everything else go to a fresh folder per test session.
os.environ.setdefault("PTUNING_MODELS", str(Path(os.environ.get("PTUNING_HOME") or
                                                 Path.home() / ".cache" / "ptuning-studio")
                                            / "models"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PTUNING_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def default_backbone():
    from ptuning_core.lm.registry import get_backbone
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return get_backbone("default", "cpu")


@pytest.fixture
def tiny_app(monkeypatch):
    """(service, page): a tiny causal model registered as the only allowed model; page(path)
    runs app.py in AppTest, switches to ``path`` and checks nothing raised."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ptuning_core.lm import registry
    from tiny import tiny_causal
    name = "tiny-app"
    monkeypatch.setenv("PTUNING_ALLOWED_MODELS", name)
    st.cache_resource.clear()
    st.cache_data.clear()
    bb = tiny_causal()
    bb.name = name
    registry.put(bb)
    from ui.common import service
    svc = service()

    def page(path=None, query=None, **state):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.session_state["model"] = name
        for k, v in state.items():
            at.session_state[k] = v
        for k, v in (query or {}).items():
            at.query_params[k] = v
        at.run()
        if path:
            at.switch_page(path)
            at.run()
        assert not at.exception, at.exception
        return at
    page.model = name
    yield svc, page
    svc._core.queue.close()
    st.cache_resource.clear()
