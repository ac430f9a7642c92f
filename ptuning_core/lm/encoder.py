"""The prompt encoder: produces the pseudo-token embeddings h_0..h_m.

``lstm`` (the paper's): learned inputs -> 2-layer bidirectional LSTM -> Linear-ReLU-Linear.
``mlp``: learned inputs -> Linear-ReLU-Linear. ``none``: the embeddings are the parameters
(prompt tuning).

Initialisation: h = base + delta, where ``base`` is the init word's embedding for [P:word] (or a
random vector with the vocabulary's per-dimension mean and std for [P]) and the encoder's last
layer starts at zero, so every run starts exactly at its init words. Only the encoder trains.

Randomness: every random draw comes from the ``generator`` passed in (the modules are built on the
meta device, then their parameters are drawn from it), never from torch's process-wide RNG, so a
run's start does not depend on what other threads do with that RNG.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

ENCODER_TYPES = ("lstm", "mlp", "none")


class PromptEncoder(nn.Module):
    def __init__(self, base: torch.Tensor, kind: str = "lstm", hidden: int | None = None,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if kind not in ENCODER_TYPES:
            raise ValueError(f"unknown encoder '{kind}': use one of {', '.join(ENCODER_TYPES)}")
        self.kind = kind
        n, d = base.shape
        self.n, self.dim = n, d
        if kind == "none":
            self.embeddings = nn.Parameter(base.detach().clone())
            return
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.register_buffer("base", base.detach().clone())
        hidden = hidden or d
        self.inputs = nn.Parameter(torch.randn(n, d, generator=gen) * 0.02)
        with torch.device("meta"):  # no draw from the global RNG; parameters come from ``gen``
            if kind == "lstm":
                half = max(1, hidden // 2)
                lstm = nn.LSTM(d, half, num_layers=2, bidirectional=True, batch_first=True)
                mlp_in = 2 * half
            else:
                lstm, mlp_in = None, d
            mlp = nn.Sequential(nn.Linear(mlp_in, hidden), nn.ReLU(), nn.Linear(hidden, d))
        self.lstm = lstm.to_empty(device="cpu") if lstm is not None else None
        self.mlp = mlp.to_empty(device="cpu")
        # The same draws, in the same order, as torch's default initialisation.
        with torch.no_grad():
            if self.lstm is not None:
                stdv = 1.0 / math.sqrt(self.lstm.hidden_size)
                for w in self.lstm.parameters():
                    nn.init.uniform_(w, -stdv, stdv, generator=gen)
            for lin in (self.mlp[0], self.mlp[2]):
                nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=gen)
                bound = 1.0 / math.sqrt(lin.in_features)
                nn.init.uniform_(lin.bias, -bound, bound, generator=gen)
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self) -> torch.Tensor:
        if self.kind == "none":
            return self.embeddings
        x = self.inputs.unsqueeze(0)
        if self.lstm is not None:
            x = self.lstm(x)[0]
        return self.base + self.mlp(x).squeeze(0)

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def initial_embeddings(embedding_matrix: torch.Tensor, init_ids: list,
                       generator: torch.Generator) -> torch.Tensor:
    """Rows: the init word's embedding, or a random vector shaped like the vocabulary's."""
    E = embedding_matrix.detach().float()
    mean, std = E.mean(0), E.std(0)
    out = []
    for tid in init_ids:
        if tid is None:
            out.append(mean.cpu() + std.cpu() * torch.randn(E.shape[1], generator=generator))
        else:
            out.append(E[tid].cpu())
    if not out:
        return torch.zeros(0, E.shape[1])
    return torch.stack(out)
