"""Co-batching: several runs on the same frozen LM step together, one LM forward for all.

Each step, every run's batch goes through the LM in one forward: each row carries its own run's
prompt vectors (the runs' prompts are stacked and each row's pseudo positions index its own
run's block) and its own layout (templates and lengths differ; rows are left-padded). Each run
keeps its own encoder, optimizer, gradient clipping and loss; rows do not see each other, so a
run's loss and gradients are its solo run's (up to float rounding from the padded shapes).

The causal fast path carries over: a run with a prefix cache contributes its rows' cached
prefixes (left-padded to the widest prefix in the step, the padding masked out), and the rest of
each row runs after it; a run without one (a template that starts with pseudo tokens) has an
empty prefix and runs whole.

Scope: causal LMs, class verbalizers with single-token words, no auxiliary loss, one precision
for all runs (``can_cobatch``); anything else trains alone (``train.train``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ptuning_core.lm.encoding import Encoded
from ptuning_core.lm.kvcache import PrefixCache
from ptuning_core.lm.model import PromptModel


@dataclass
class CoRun:
    """One run's share of a co-batched step."""
    pm: PromptModel
    encs: list  # this step's encodings
    gold: torch.Tensor  # (B,) class indices
    prefix: Optional[PrefixCache] = None  # the run's prefix cache (None: no fast path)
    rows: Optional[torch.Tensor] = None  # the batch's rows in ``prefix``
    optimizer: Optional[torch.optim.Optimizer] = None
    clip: float = 0.0


def can_cobatch(pm: PromptModel, aux_weight: float = 0.0) -> bool:
    return (pm.kind == "causal" and pm.encoder is not None and pm.cverb is not None
            and not pm.cverb.multi_token and not aux_weight)


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    n = width - t.shape[dim]
    if n <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim)


def cobatched_scores(runs: list) -> list:
    """Class scores (B_i, C_i) of every run's batch from one forward of the shared frozen LM."""
    if not runs:
        return []
    pm0 = runs[0].pm
    for r in runs:
        if r.pm.backbone is not pm0.backbone or r.pm.precision != pm0.precision:
            raise ValueError("co-batched runs must share the backbone and the precision")
        if not can_cobatch(r.pm):
            raise ValueError("this run cannot be co-batched (see cobatch.can_cobatch)")
    prompts, rem, pre = [], [], []
    offset = 0
    for r in runs:
        p = r.pm.prompt_embeddings()
        prompts.append(p)
        for e in r.encs:
            s = e.first_pseudo if r.prefix is not None else 0
            rem.append(Encoded(e.ids[s:], e.roles[s:],
                               [i + offset if i >= 0 else -1 for i in e.pseudo_idx[s:]],
                               e.label_pos - s))
        if r.prefix is not None:
            pre.append(r.prefix.rows(r.rows))
        else:
            pre.append(None)
        offset += p.shape[0]
    dev = pm0.device
    b = pm0.collate(rem)
    width = max((x[1].shape[1] for x in pre if x is not None), default=0)  # widest prefix
    cache_layers, pmask, plen = None, None, None
    if width:
        n_layers = len(next(x for x in pre if x is not None)[0])
        ref = next(x for x in pre if x is not None)[0][0][0]
        per_layer = [([], []) for _ in range(n_layers)]
        masks, lens = [], []
        for r, x in zip(runs, pre):
            B = len(r.encs)
            if x is None:
                shape = (B, ref.shape[1], width, ref.shape[3])
                for ks, vs in per_layer:
                    ks.append(ref.new_zeros(shape))
                    vs.append(ref.new_zeros(shape))
                masks.append(torch.zeros(B, width, dtype=torch.long, device=dev))
                lens.append(torch.zeros(B, dtype=torch.long, device=dev))
                continue
            layers, m, ln = x
            for (ks, vs), (k, v) in zip(per_layer, layers):
                ks.append(_pad_left(k, width, 2))
                vs.append(_pad_left(v, width, 2))
            masks.append(_pad_left(m, width, 1))
            lens.append(ln)
        cache_layers = [(torch.cat(ks), torch.cat(vs)) for ks, vs in per_layer]
        pmask, plen = torch.cat(masks), torch.cat(lens)
    if cache_layers is not None:
        mask = torch.cat([pmask, b.attention_mask], 1)
        pos = plen.unsqueeze(1) + b.position_ids
    else:
        mask, pos = b.attention_mask, b.position_ids
    emb = pm0.embed(b.input_ids, b.pseudo_idx, torch.cat(prompts))
    h = pm0.body(emb, mask, pos, cache_layers)
    out, s = [], 0
    for r in runs:
        n = len(r.encs)
        out.append(r.pm.slot_scores(h[s:s + n], b.label_pos[s:s + n]))
        s += n
    return out


def cobatched_losses(runs: list) -> list:
    """Each run's cross-entropy loss (a graph to its own encoder), from one LM forward."""
    with runs[0].pm.autocast():
        scores = cobatched_scores(runs)
        return [F.cross_entropy(sc.float(), r.gold) for sc, r in zip(scores, runs)]


def cobatched_step(runs: list) -> list:
    """One optimisation step of every run (each its own optimizer and clipping) with one LM
    forward and one backward; returns the runs' losses as floats."""
    losses = cobatched_losses(runs)
    for r in runs:
        r.optimizer.zero_grad(set_to_none=True)
    torch.stack(losses).sum().backward()  # a run's loss depends on its own encoder only
    for r in runs:
        if r.clip:
            torch.nn.utils.clip_grad_norm_(
                [p for p in r.pm.encoder.parameters() if p.requires_grad], r.clip)
        r.optimizer.step()
    return [float(x.detach()) for x in losses]
