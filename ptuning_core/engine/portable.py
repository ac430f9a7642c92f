"""Export / import a learned prompt: one .safetensors file (tensors + JSON metadata) and a JSON
sidecar. Never pickle: imports are read with safetensors only, then shapes, dtype and model are
checked."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open

from ptuning_core.lm.label_tokens import FILE as LABELS_FILE
from ptuning_core.store.runs import RunStore, atomic_save

FORMAT = "ptuning-studio-prompt/1"
MAX_IMPORT_BYTES = 64 * 2 ** 20


class PromptFileError(ValueError):
    pass


def export_prompt(store: RunStore, run_id: str, path) -> str:
    run = store.get(run_id, details=False)
    if run is None:
        raise PromptFileError(f"no run {run_id}")
    t = store.tensors(run_id)
    if "embeddings" not in t:
        raise PromptFileError(f"run {run_id} has no learned prompt (discrete or unfinished)")
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    cfg = run["config"]
    meta = {"format": FORMAT, "template": cfg.get("template"), "model": cfg.get("model"),
            "verbalizer": cfg.get("verbalizer"), "kind": (run["result"] or {}).get("kind"),
            "hidden_size": int(t["embeddings"].shape[1]), "name": run["name"],
            "label_field": cfg.get("label_field") or "label",
            "discrete_template": cfg.get("discrete_template")}
    out = {"embeddings": t["embeddings"].float(), "init": t.get("init", t["embeddings"]).float()}
    lt = store.tensors(run_id, LABELS_FILE)
    if lt:  # learned label tokens travel with the prompt
        meta["label_tokens"] = "learned"
        out.update({f"label_{k}": v.float() for k, v in lt.items()})
    atomic_save(out, path, {"ptuning": json.dumps(meta)})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return str(path)


def read_prompt_file(path) -> tuple:
    """Return (metadata, tensors) after validating the file; raises PromptFileError."""
    p = Path(path)
    if p.suffix != ".safetensors":
        raise PromptFileError("only .safetensors prompt files can be imported (never pickle)")
    if not p.is_file():
        raise PromptFileError(f"no such file: {path}")
    if p.stat().st_size > MAX_IMPORT_BYTES:
        raise PromptFileError("the prompt file is too large")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta_raw = (f.metadata() or {}).get("ptuning")
            keys = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys & {"embeddings", "init", *LABEL_KEYS}}
    except (SafetensorError, OSError, ValueError) as e:
        raise PromptFileError(f"not a valid safetensors file ({str(e)[:120]})") from None
    if not meta_raw:
        raise PromptFileError("the file has no P-tuning Studio metadata")
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        raise PromptFileError("the file's metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PromptFileError(f"unknown prompt file format (expected {FORMAT})")
    emb = tensors.get("embeddings")
    if emb is None or emb.dim() != 2 or not emb.is_floating_point():
        raise PromptFileError("the file needs a 2-D floating-point 'embeddings' tensor")
    if not torch.isfinite(emb).all():
        raise PromptFileError("the embeddings contain NaN or infinite values")
    if "init" in tensors and tensors["init"].shape != emb.shape:
        raise PromptFileError("'init' and 'embeddings' have different shapes")
    if not isinstance(meta.get("template"), str):
        raise PromptFileError("the file's metadata has no template")
    check_label_tensors(tensors, emb.shape[1], meta.get("verbalizer"))
    return meta, tensors


LABEL_KEYS = ("label_vectors", "label_bias", "label_init")


def check_label_tensors(t: dict, hidden: int, verbalizer) -> None:
    """Learned label vectors in a prompt file: all or none, one per class, finite, the prompt's
    hidden size."""
    have = [k for k in LABEL_KEYS if k in t]
    if not have:
        return
    if set(have) != set(LABEL_KEYS):
        raise PromptFileError("the file's learned label tokens are incomplete "
                              f"(needs {', '.join(LABEL_KEYS)})")
    v, b, i = (t[k] for k in LABEL_KEYS)
    n = len(verbalizer) if isinstance(verbalizer, dict) else None
    if v.dim() != 2 or v.shape[1] != hidden or i.shape != v.shape or b.shape != (v.shape[0],) \
            or (n is not None and v.shape[0] != n):
        raise PromptFileError("the file's learned label tokens do not fit its prompt (one "
                              "vector of the hidden size per class)")
    if not all(x.is_floating_point() and torch.isfinite(x).all() for x in (v, b, i)):
        raise PromptFileError("the learned label tokens contain NaN or infinite values")


def label_tensors(tensors: dict) -> dict:
    """The run-store form (``vectors``, ``bias``, ``init``) of a file's label tensors, or {}."""
    if "label_vectors" not in tensors:
        return {}
    return {k[len("label_"):]: tensors[k].float() for k in LABEL_KEYS}


def check_fits(template: str, emb: torch.Tensor, backbone) -> None:
    """Learned embeddings fit a model: its hidden size, one row per pseudo token of the
    template on its tokenizer. Raises PromptFileError with the mismatch."""
    from ptuning_core.lm.encoding import compile_layout
    if emb.dim() != 2 or emb.shape[1] != backbone.hidden_size:
        raise PromptFileError(f"embedding size {emb.shape[-1]} does not match the model's "
                              f"{backbone.hidden_size}: the prompt was learned on another model")
    lay = compile_layout(template, backbone.tokenizer, backbone.kind)
    if lay.n_pseudo != emb.shape[0]:
        raise PromptFileError(f"the template has {lay.n_pseudo} pseudo tokens but the prompt "
                              f"has {emb.shape[0]}")


def import_prompt(store: RunStore, path, model: Optional[str] = None, owner: str = "",
                  backbone=None) -> str:
    meta, tensors = read_prompt_file(path)
    if model is not None and meta.get("model") != model:
        raise PromptFileError(f"the prompt was learned on '{meta.get('model')}', not '{model}'")
    emb = tensors["embeddings"]
    if backbone is not None:
        check_fits(meta["template"], emb, backbone)
    cfg = {"template": meta["template"], "model": meta.get("model"),
           "verbalizer": meta.get("verbalizer"), "label_field": meta.get("label_field") or "label",
           "discrete_template": meta.get("discrete_template"),
           "imported_from": os.path.basename(str(path))}
    files = {"prompt.safetensors": {"embeddings": emb.float(),
                                    "init": tensors.get("init", emb).float()}}
    if label_tensors(tensors):
        files[LABELS_FILE] = label_tensors(tensors)
        cfg["train_cfg"] = {"label_tokens": "learned"}
    # its own name (not the original's: the Runs table tells the two apart)
    rid = store.create(f"{meta.get('name') or 'prompt'} (imported)", cfg, owner, kind="train",
                       status="imported")
    store.finish(rid, "imported", {"kind": meta.get("kind"), "model": meta.get("model")},
                 files)
    return rid
