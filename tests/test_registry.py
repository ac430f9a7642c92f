import pytest

from ptuning_core.lm import registry
from ptuning_core.lm.registry import get_backbone
from tiny import tiny_causal, tiny_masked


@pytest.fixture
def fake_loads(monkeypatch):
    """Loading a model builds a tiny one named after it; returns the names loaded, in order."""
    loads = []

    def load(name, device):
        loads.append(name)
        bb = tiny_masked() if name.endswith("-m") else tiny_causal()
        bb.name = name
        return bb
    monkeypatch.setattr(registry, "load_backbone", load)
    monkeypatch.delenv("PTUNING_MAX_MODELS", raising=False)
    yield loads
    for key in registry.loaded():
        if key[0].startswith("lru-"):
            registry.unload(*key)


def held():
    return [k[0] for k in registry.loaded() if k[0].startswith("lru-")]


def test_least_recently_used_models_are_evicted_beyond_the_budget(fake_loads, monkeypatch):
    a = get_backbone("lru-a", "cpu")
    get_backbone("lru-b-m", "cpu")
    assert get_backbone("lru-a", "cpu") is a  # a hit, and now the most recently used
    get_backbone("lru-c", "cpu")  # default budget 2: lru-b-m goes
    assert held() == ["lru-a", "lru-c"] and fake_loads == ["lru-a", "lru-b-m", "lru-c"]
    b = get_backbone("lru-b-m", "cpu")  # evicted models reload; now lru-a is the oldest
    assert b.kind == "masked" and fake_loads[-1] == "lru-b-m"
    assert held() == ["lru-c", "lru-b-m"]
    monkeypatch.setenv("PTUNING_MAX_MODELS", "1")
    get_backbone("lru-d", "cpu")
    assert held() == ["lru-d"]


def test_put_models_are_never_evicted_and_bad_budgets_fall_back(fake_loads, monkeypatch):
    built = tiny_causal()
    built.name = "lru-built"
    registry.put(built)
    monkeypatch.setenv("PTUNING_MAX_MODELS", "1")
    get_backbone("lru-x", "cpu")
    get_backbone("lru-y", "cpu")
    assert held() == ["lru-built", "lru-y"]
    assert get_backbone("lru-built", "cpu") is built and "lru-built" not in fake_loads
    monkeypatch.setenv("PTUNING_MAX_MODELS", "lots")
    assert registry.max_models() == registry.DEFAULT_MAX_MODELS
    monkeypatch.setenv("PTUNING_MAX_MODELS", "0")
    assert registry.max_models() == registry.DEFAULT_MAX_MODELS
