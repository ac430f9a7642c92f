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
    from ptuning_core.registry import get_backbone
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return get_backbone("default", "cpu")
