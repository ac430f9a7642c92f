"""The prompt encoder: produces the pseudo-token embeddings h_0..h_m.

``lstm`` (the paper's): learned inputs -> 2-layer bidirectional LSTM -> Linear-ReLU-Linear.
``mlp``: learned inputs -> Linear-ReLU-Linear. ``none``: the embeddings are the parameters
(prompt tuning).

Initialisation: h = base + delta, where ``base`` is the init word's embedding for [P:word] (or a
random vector with the vocabulary's per-dimension mean and std for [P]) and the encoder's last
layer starts at zero, so every run starts exactly at its init words. Only the encoder trains.
"""
from __future__ import annotations

import torch
from torch import nn

ENCODER_TYPES = ("lstm", "mlp", "none")


class PromptEncoder(nn.Module):
    def __init__(self, base: torch.Tensor, kind: str = "lstm", hidden: int | None = None):
        super().__init__()
        if kind not in ENCODER_TYPES:
            raise ValueError(f"unknown encoder '{kind}': use one of {', '.join(ENCODER_TYPES)}")
        self.kind = kind
        n, d = base.shape
        self.n, self.dim = n, d
        if kind == "none":
            self.embeddings = nn.Parameter(base.detach().clone())
            return
        self.register_buffer("base", base.detach().clone())
        hidden = hidden or d
        self.inputs = nn.Parameter(torch.randn(n, d) * 0.02)
        if kind == "lstm":
            half = max(1, hidden // 2)
            self.lstm = nn.LSTM(d, half, num_layers=2, bidirectional=True, batch_first=True)
            mlp_in = 2 * half
        else:
            self.lstm = None
            mlp_in = d
        self.mlp = nn.Sequential(nn.Linear(mlp_in, hidden), nn.ReLU(), nn.Linear(hidden, d))
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
