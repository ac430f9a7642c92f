"""Encoded examples -> one padded batch on the model's device (left padding for causal LMs, so
every label slot and prompt block ends at the same place)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

TEXT_ROLES = ("text", "field", "anchor")


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: Optional[torch.Tensor]
    pseudo_idx: torch.Tensor
    label_pos: torch.Tensor
    text_mask: torch.Tensor  # positions holding real text (aux-loss targets)
    first_pseudo: torch.Tensor  # per row, padded index of the first pseudo token (or L)


def collate(encs: list, pad: int, left: bool, device) -> Batch:
    """Pad ``encs`` (``encoding.Encoded``) into a ``Batch`` on ``device`` (one transfer)."""
    L = max(len(e.ids) for e in encs)
    B = len(encs)
    ids = torch.full((B, L), pad, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    pidx = torch.full((B, L), -1, dtype=torch.long)
    textm = torch.zeros((B, L), dtype=torch.bool)
    lpos = torch.zeros(B, dtype=torch.long)
    first = torch.full((B,), L, dtype=torch.long)
    for b, e in enumerate(encs):
        n = len(e.ids)
        o = L - n if left else 0
        ids[b, o:o + n] = torch.tensor(e.ids)
        mask[b, o:o + n] = 1
        pidx[b, o:o + n] = torch.tensor(e.pseudo_idx)
        textm[b, o:o + n] = torch.tensor([r in TEXT_ROLES for r in e.roles])
        lpos[b] = e.label_pos + o
        if e.first_pseudo >= 0:
            first[b] = e.first_pseudo + o
    pos = (mask.cumsum(-1) - 1).clamp(min=0) if left else torch.zeros_like(mask)
    # one buffer, one (pinned, non-blocking on CUDA) transfer per batch
    packed = torch.cat([torch.stack([ids, mask, pos, pidx, textm.long()]).flatten(), lpos, first])
    dev = torch.device(device)
    if dev.type == "cuda":
        packed = packed.pin_memory().to(dev, non_blocking=True)
    else:
        packed = packed.to(dev)
    n = B * L
    grid = packed[:5 * n].view(5, B, L)
    lpos_d, first_d = packed[5 * n:5 * n + B], packed[5 * n + B:]
    return Batch(grid[0], grid[1], grid[2] if left else None, grid[3], lpos_d, grid[4].bool(),
                 first_d)
