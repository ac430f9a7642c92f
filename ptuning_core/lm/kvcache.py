"""The fast path's cache: keys/values of each example's frozen prefix (everything before the
first pseudo token), computed once and reused every step; and the transformers cache API
differences it papers over."""
from __future__ import annotations

import inspect
import os
import threading
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn.functional as F


def cache_kwarg(module) -> str:
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def out_cache(out):
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


def new_cache(layers):
    from transformers import DynamicCache
    c = DynamicCache()
    for i, (k, v) in enumerate(layers):
        c.update(k, v, i)
    return c


def cache_layers(cache) -> list:
    if hasattr(cache, "layers"):
        return [(l.keys, l.values) for l in cache.layers]
    return [(k, v) for k, v in cache]  # legacy tuples


class PrefixCache:
    """Keys/values of each example's frozen prefix (everything before the first pseudo token)."""

    def __init__(self, layers, mask, lengths):
        self.layers, self.mask, self.lengths = layers, mask, lengths

    def rows(self, idx: torch.Tensor):
        return [(k[idx], v[idx]) for k, v in self.layers], self.mask[idx], self.lengths[idx]

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                   for k, v in self.layers)


def prefix_bytes(backbone, encs) -> int:
    """Memory a prefix cache of ``encs`` would take (to decide whether to build one)."""
    cfg = backbone.model.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 1)
    heads = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads",
                                                                  None) or getattr(cfg, "n_head", 1)
    hd = getattr(cfg, "head_dim", None) or backbone.hidden_size // max(1, getattr(
        cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 1))
    P = max(e.first_pseudo for e in encs)
    el = backbone.embeddings.element_size()
    return len(encs) * P * layers * 2 * heads * hd * el


@torch.no_grad()
def build_prefix_cache(run_body, backbone, encs, device, chunk: int = 64,
                       lengths: Optional[list] = None) -> PrefixCache:
    """``run_body(emb, mask, pos) -> cache``: the frozen LM over the left-padded prefixes
    (each example's tokens before its first pseudo token, or its first ``lengths[i]``)."""
    ns = lengths if lengths is not None else [e.first_pseudo for e in encs]
    return _build(run_body, backbone, [e.ids[:n] for e, n in zip(encs, ns)], device, chunk)


def _build(run_body, backbone, prefixes: list, device, chunk: int = 64) -> PrefixCache:
    P = max(len(p) for p in prefixes)
    pad = backbone.tokenizer.pad_token_id or 0
    layers, masks = None, []
    for s in range(0, len(prefixes), chunk):
        part = prefixes[s:s + chunk]
        ids = torch.full((len(part), P), pad, dtype=torch.long)
        mask = torch.zeros((len(part), P), dtype=torch.long)
        for b, p in enumerate(part):
            n = len(p)
            ids[b, P - n:] = torch.tensor(p)
            mask[b, P - n:] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        got = cache_layers(run_body(F.embedding(ids, backbone.embeddings), mask, pos))
        if layers is None:
            layers = [([k], [v]) for k, v in got]
        else:
            for (ks, vs), (k, v) in zip(layers, got):
                ks.append(k)
                vs.append(v)
        masks.append(mask)
    layers = [(torch.cat(ks), torch.cat(vs)) for ks, vs in layers]
    lengths = torch.tensor([len(p) for p in prefixes], device=device)
    return PrefixCache(layers, torch.cat(masks), lengths)


class SharedPrefixes:
    """The frozen part once per process: keys/values of each example's frozen prefix (the
    tokens before anything a prompt changes), kept per example and shared by every run and
    evaluation on the same model and precision (a class's students train and evaluate on the
    same examples). Bounded in bytes, least recently used out. A batch's ``PrefixCache`` is
    assembled from the entries, left-padded to its widest prefix, exactly as one built for it."""

    def __init__(self, max_mb: int):
        self.max_bytes = max_mb * 2 ** 20
        self._d: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def cache_for(self, run_body, backbone, scope, prefixes: list, device,
                  chunk: int = 64) -> PrefixCache:
        """A ``PrefixCache`` for ``prefixes`` (token id lists); ``scope`` names the model and
        precision the keys/values belong to. Missing entries are computed in one pass."""
        keys = [(scope, tuple(p)) for p in prefixes]
        with self._lock:
            got = {}
            for k in keys:
                e = self._d.get(k)
                if e is not None:
                    self._d.move_to_end(k)
                    got[k] = e
        missing = list(dict.fromkeys(k for k in keys if k not in got))
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            built = _build(run_body, backbone, [list(k[1]) for k in missing], device, chunk)
            P = built.mask.shape[1]
            for b, k in enumerate(missing):
                n = len(k[1])
                ent = [(kk[b:b + 1, :, P - n:].clone(), vv[b:b + 1, :, P - n:].clone())
                       for kk, vv in built.layers]
                got[k] = ent
                self._put(k, ent)
        return _assemble([got[k] for k in keys], device)

    def _put(self, key, ent) -> None:
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in ent)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                return
            self._d[key] = ent
            self._bytes += size
            while self._bytes > self.max_bytes and self._d:
                _, old = self._d.popitem(last=False)
                self._bytes -= sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                                   for k, v in old)


def _assemble(entries: list, device) -> PrefixCache:
    """Per-example (1, heads, n, dim) keys/values -> one left-padded batch."""
    ns = [ent[0][0].shape[2] for ent in entries]
    B, P = len(entries), max(ns)
    layers = []
    for li in range(len(entries[0])):
        k0, v0 = entries[0][li]
        K = k0.new_zeros((B, k0.shape[1], P, k0.shape[3]))
        V = v0.new_zeros((B, v0.shape[1], P, v0.shape[3]))
        for b, ent in enumerate(entries):
            n = ns[b]
            K[b, :, P - n:] = ent[li][0][0]
            V[b, :, P - n:] = ent[li][1][0]
        layers.append((K, V))
    mask = torch.zeros((B, P), dtype=torch.long)
    for b, n in enumerate(ns):
        mask[b, P - n:] = 1
    return PrefixCache(layers, mask.to(device), torch.tensor(ns, device=device))


# One per process (runs and evaluations of every session share the frozen model's prefixes).
SHARED = SharedPrefixes(int(os.environ.get("PTUNING_PREFIX_CACHE_MB", "512")))
