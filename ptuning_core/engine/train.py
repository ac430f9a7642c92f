"""The training loop: AdamW on the prompt encoder only; emits events; honours a stop flag."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ptuning_core.engine.evaluate import evaluate, phase_progress
from ptuning_core.lm.model import PromptModel
from ptuning_core.profiling import section

# The training settings and their limits are defined once, in config.py; re-exported here for
# the modules and tests that import them from train.
from ptuning_core.config import (FINETUNE, LABEL_INITS, LABEL_TOKENS, LIMITS,  # noqa: F401
                     ConfigError, TrainConfig)


@dataclass
class TrainResult:
    status: str  # finished | stopped | early-stopped
    steps: int
    seconds: float
    losses: list
    dev: list = field(default_factory=list)  # (step, metric)
    snapshots: list = field(default_factory=list)  # (step, tensor m x d)
    path: str = "plain"
    trainable_parameters: int = 0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else 0.0


def train(pm: PromptModel, examples: list, cfg: TrainConfig, label_field: str = "label",
          dev: Optional[list] = None, callback: Optional[Callable[[dict], None]] = None,
          stop: Optional[threading.Event] = None) -> TrainResult:
    cfg.validate()
    emit = callback or (lambda e: None)
    if pm.encoder is None:
        raise ConfigError("the template has no pseudo token: there is nothing to train")
    gold_all = pm.gold_ids([str(ex[label_field]) for ex in examples])
    keep = [i for i, g in enumerate(gold_all) if g >= 0]
    if not keep:
        raise ConfigError("no training example has a usable label (in open-vocabulary mode the "
                          "gold word must be a single token)")
    examples = [examples[i] for i in keep]
    gold = torch.tensor([gold_all[i] for i in keep], device=pm.device)
    encs = pm.encode(examples)
    # Per-run generators only: nothing here reads or seeds torch's process-wide RNG.
    gen = torch.Generator().manual_seed(cfg.seed)
    aux_gen = torch.Generator().manual_seed(cfg.seed + 1) if cfg.aux_weight > 0 else None

    pm.set_precision(cfg.precision)
    prefix, path = None, "plain"
    if cfg.fast and pm.fast_path_possible(encs):
        if pm.prefix_bytes(encs) <= cfg.prefix_cache_mb * 2 ** 20:
            with pm.autocast(), section("cache build"):
                prefix, path = pm.build_prefix_cache(encs), "fast"
        else:
            path = "fast-recompute"

    pm.encoder.train()
    params = pm.trainable_parameters()  # the encoder (and learned label vectors)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(encs)
    bs = min(cfg.batch_size, n)
    order = torch.randperm(n, generator=gen)
    cursor = 0
    losses, devs, snaps = [], [], []
    best, best_state, bad = -1.0, None, 0
    status = "finished"
    emit({"type": "start", "steps": cfg.steps, "path": path, "n_train": n,
          "precision": pm.precision,
          "trainable_parameters": sum(p.numel() for p in params)})
    if cfg.snapshot_every:
        snaps.append((0, pm.prompt_embeddings().detach().float().cpu().clone()))
    t0 = time.perf_counter()
    step = 0
    for step in range(1, cfg.steps + 1):
        if stop is not None and stop.is_set():
            status, step = "stopped", step - 1
            break
        if cursor + bs > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        rows = order[cursor:cursor + bs]
        cursor += bs
        benc = [encs[int(i)] for i in rows]
        with pm.autocast(), section("step forward"):
            if path == "plain":
                sc, aux = pm.scores(pm.collate(benc), aux_gen)
            else:
                pc = prefix if prefix is not None else pm.build_prefix_cache(benc, shared=False)
                r = rows.to(pm.device) if prefix is not None else torch.arange(len(benc),
                                                                                 device=pm.device)
                sc, aux = pm.fast_scores(benc, pc, r, aux=aux_gen is not None)
            g = gold[rows.to(pm.device)]
            loss = F.cross_entropy(sc.float(), g) if pm.cverb is not None else \
                F.nll_loss(sc.float(), g)
            total = loss + cfg.aux_weight * aux if aux is not None else loss
        opt.zero_grad(set_to_none=True)
        with section("step backward"):
            total.backward()
        with section("step optimizer"):
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()
        lv = float(loss.detach())  # the one host sync per step: the logged loss
        losses.append(lv)
        elapsed = time.perf_counter() - t0
        emit({"type": "step", "step": step, "steps": cfg.steps, "loss": lv,
              "aux": float(aux.detach()) if aux is not None else None, "seconds": elapsed})
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            with section("snapshots"):
                snaps.append((step, pm.prompt_embeddings().detach().float().cpu().clone()))
        if dev and cfg.eval_every and step % cfg.eval_every == 0:
            pm.encoder.eval()
            m = evaluate(pm, dev, label_field,
                         progress=phase_progress(emit, "dev evaluation"))["accuracy"]
            emit({"type": "phase", "phase": "train"})
            pm.encoder.train()
            devs.append((step, m))
            emit({"type": "eval", "step": step, "dev_accuracy": m})
            if m > best:
                best, bad = m, 0
                best_state = pm.trainable_state()
            else:
                bad += 1
                if cfg.patience and bad >= cfg.patience:
                    status = "early-stopped"
                    break
    seconds = time.perf_counter() - t0
    if best_state is not None:
        pm.load_trainable_state(best_state)  # keep the best dev checkpoint
    pm.encoder.eval()
    if cfg.snapshot_every and (not snaps or snaps[-1][0] != step):
        snaps.append((step, pm.prompt_embeddings().detach().float().cpu().clone()))
    res = TrainResult(status, len(losses), seconds, losses, devs, snaps, path,
                      sum(p.numel() for p in params))
    emit({"type": "end", "status": status, "steps": len(losses), "seconds": seconds})
    return res
