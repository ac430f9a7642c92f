"""The fast path's cache: keys/values of each example's frozen prefix (everything before the
first pseudo token), computed once and reused every step; and the transformers cache API
differences it papers over."""
from __future__ import annotations

import inspect

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
def build_prefix_cache(run_body, backbone, encs, device, chunk: int = 64) -> PrefixCache:
    """``run_body(emb, mask, pos) -> cache``: the frozen LM over the left-padded prefixes."""
    P = max(e.first_pseudo for e in encs)
    pad = backbone.tokenizer.pad_token_id or 0
    layers, masks = None, []
    for s in range(0, len(encs), chunk):
        part = encs[s:s + chunk]
        ids = torch.full((len(part), P), pad, dtype=torch.long)
        mask = torch.zeros((len(part), P), dtype=torch.long)
        for b, e in enumerate(part):
            n = e.first_pseudo
            ids[b, P - n:] = torch.tensor(e.ids[:n])
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
    lengths = torch.tensor([e.first_pseudo for e in encs], device=device)
    return PrefixCache(layers, torch.cat(masks), lengths)
