import pytest
import torch

from ptuning_core.lm.backbone import ModelLoadError, load_backbone, model_kind, resolve_device


@pytest.mark.real
def test_default_model_loads_offline_from_the_cache(default_backbone):
    bb = load_backbone("default", "cpu")
    assert bb.source == "cache" and bb.kind == "causal"
    assert 130e6 < bb.n_parameters < 140e6
    assert not any(p.requires_grad for p in bb.model.parameters()) and not bb.model.training
    ids = bb.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        nxt = bb.model(ids).logits[0, -1].argmax()
    assert bb.tokenizer.decode([int(nxt)]).strip() == "Paris"


def test_local_folder_round_trip(tmp_path):
    from tiny import tiny_masked
    bb = tiny_masked()
    bb.model.save_pretrained(tmp_path / "m")
    bb.tokenizer.save_pretrained(tmp_path / "m")
    got = load_backbone(str(tmp_path / "m"), "cpu")
    assert got.kind == "masked" and got.source == "folder"


@pytest.mark.parametrize("name,needle", [
    ("/definitely/not/here", "no model folder"),
    ("missing.gguf", "no GGUF file"),
])
def test_bad_model_names(name, needle):
    with pytest.raises(ModelLoadError, match=needle):
        load_backbone(name, "cpu")


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelLoadError, match="no usable weights|could not load"):
        load_backbone(str(tmp_path), "cpu")
    with pytest.raises(ModelLoadError, match="not a model"):
        load_backbone(str(tmp_path.parent), "cpu")


def test_not_a_gguf(tmp_path):
    f = tmp_path / "x.gguf"
    f.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError):
        load_backbone(str(f), "cpu")


def test_kind_detection():
    class C:
        pass
    c = C()
    c.architectures, c.model_type = ["BertForMaskedLM"], "bert"
    assert model_kind(c) == "masked"
    c.architectures, c.model_type = ["LlamaForCausalLM"], "llama"
    assert model_kind(c) == "causal"
    c.architectures, c.model_type = None, "roberta"
    assert model_kind(c) == "masked"


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(ModelLoadError, match="unknown device"):
        resolve_device("tpu9")


HUB_PROBE = r"""
import json, sys, time
from ptuning_core.lm.backbone import ModelLoadError, load_backbone
t = time.monotonic()
try:
    load_backbone("nobody/not-cached-anywhere", "cpu")
    out = {"error": None}
except ModelLoadError as e:
    out = {"error": str(e)}
out["seconds"] = time.monotonic() - t
print(json.dumps(out))
"""


@pytest.mark.parametrize("server", ["refuses", "never-answers"])
def test_unreachable_hub_fails_fast_with_a_model_load_error(tmp_path, server):
    """Offline mode off, the Hub endpoint on a loopback port that refuses connections, or
    accepts them and never answers: loading a model that is not cached must fail with one
    ModelLoadError within seconds (huggingface_hub alone waits ~25 s, or minutes)."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path
    sock = None
    if server == "refuses":
        endpoint = "http://127.0.0.1:9"  # discard port: nothing listens there
    else:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # connections queue in the backlog; nobody ever reads or answers
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PTUNING_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), PTUNING_HOME=str(tmp_path),
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    try:
        r = subprocess.run([sys.executable, "-c", HUB_PROBE], env=env, capture_output=True,
                           text=True, timeout=120)
    finally:
        if sock is not None:
            sock.close()
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["error"] and "not in the local cache" in out["error"]
    assert "\n" not in out["error"]
    assert out["seconds"] < 15, out
