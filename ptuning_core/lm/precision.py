"""Numeric precision of the frozen LM's forward: fp32, bf16, or auto (bf16 where the hardware
does it natively).

* ``resolve_precision(precision, device)`` -> "fp32" | "bf16". ``auto`` is bf16 on a CUDA GPU
  with bf16 and on a CPU with AVX-512 BF16 or AMX (read from /proc/cpuinfo; PTUNING_CPU_BF16=0|1
  overrides it), fp32 elsewhere.
* ``autocast(device, precision)``: the context the LM's forward runs in. In bf16 it is torch's
  bf16 autocast and, on the CPU, the plain ("math") attention kernel: the fused CPU attention's
  bf16 backward is several times slower than the fp32 one.
* ``lowp_model(backbone)``: a bf16 copy of the frozen LM, made once per backbone. Autocast casts
  a weight at every use unless it requires grad, and frozen weights do not: with the copy, the
  weights are read as bf16 and nothing is cast.

The prompt encoder and its optimizer stay in fp32 (the encoder runs outside autocast: see
``model.PromptModel.prompt_embeddings``); only the frozen LM's matrix products run in bf16.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os

import torch

from ptuning_core.config import PRECISIONS  # noqa: F401  (the names TrainConfig accepts)

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX). PTUNING_CPU_BF16=0|1
    overrides the detection (the tests pin it to 0 so that ``auto`` is fp32 on every machine)."""
    env = os.environ.get("PTUNING_CPU_BF16", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return any(f in _cpu_flags() for f in CPU_BF16_FLAGS)


def resolve_precision(precision: str, device) -> str:
    """The precision a run uses on ``device``: 'fp32' or 'bf16'. An explicit choice is kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if dev.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast(device, precision: str):
    """The context for the frozen LM's forward at ``precision`` (resolved or 'auto')."""
    dev = torch.device(device)
    if resolve_precision(precision, dev) != "bf16":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(dev.type, dtype=torch.bfloat16))
    if dev.type == "cpu":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
    return stack


def no_autocast(device):
    """Leave autocast for a piece that must stay fp32 (the prompt encoder)."""
    return torch.autocast(torch.device(device).type, enabled=False)


def lowp_model(backbone):
    """A bf16 copy of the backbone's frozen model, made once (under the backbone's lock) and kept
    on the backbone."""
    if backbone.lowp is not None:
        return backbone.lowp
    with backbone.lock:
        if backbone.lowp is None:
            m = copy.deepcopy(backbone.model).to(torch.bfloat16)
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            backbone.lowp = m
    return backbone.lowp
