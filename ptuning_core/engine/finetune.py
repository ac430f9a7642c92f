"""Fine-tuning baselines for the method's sixth claim (prompts can match fine-tuning):

* ``lora``: low-rank adapters (``peft``), rank ``TrainConfig.lora_rank`` on the attention
  projections, everything else frozen; lr ``TrainConfig.lora_lr``;
* ``full``: every weight of the model, AdamW, lr ``TrainConfig.full_lr`` (small).

Both train on the same samples as the prompts and are scored the same way: the discrete
template's label slot through the verbalizer's words (``PromptModel``'s class scores), so the
numbers are comparable with P-tuning's. Each trains a **deep copy** of the backbone: the shared
frozen backbone that other runs and sessions use is never modified (no adapter is injected into
it, no weight changes, no ``requires_grad`` flips). The copy is dropped with the returned prompt
model. The backbone stays in eval mode (no dropout): runs are reproducible per seed.

Memory (full): the copy's weights, their gradients and AdamW's two moments are four times the
model's size in float32 (SmolLM2-135M: about 2.2 GB), plus activations; LoRA: one more copy of the
weights (0.5 GB) and small adapters."""
from __future__ import annotations

import copy
import math
import threading
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ptuning_core.lm.backbone import Backbone
from ptuning_core.lm.model import PromptModel
from ptuning_core.lm.precision import autocast
from ptuning_core.engine.train import ConfigError, TrainConfig, TrainResult

METHODS = ("lora", "full")
# Attention projections by architecture: Llama/Mistral/Qwen (q/k/v/o_proj), BERT/RoBERTa
# (query/key/value), DistilBERT (q/k/v/out_lin), GPT-2 (c_attn, the fused q/k/v), MPT/ModernBERT
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj", "query", "key", "value", "q_lin", "k_lin",
             "v_lin", "out_lin", "c_attn", "Wqkv")


def _autocast(device: torch.device, precision: str):
    """bf16 autocast for the trained copy on a GPU only (on a CPU autocast re-casts every
    weight each step, slower than fp32: precision.py keeps a bf16 copy for frozen models, which
    a model being trained cannot use)."""
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    return autocast(device, precision)


def attention_targets(model) -> list:
    """The attention projection modules' names (last part) present in ``model``."""
    found = set()
    for name, mod in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in ATTENTION and hasattr(mod, "weight"):
            found.add(last)
    return sorted(found)


def trainable_copy(bb: Backbone, method: str, cfg: TrainConfig, seed: int) -> Backbone:
    """A deep copy of the backbone with what ``method`` trains set to require gradients."""
    if method not in METHODS:
        raise ConfigError(f"fine-tuning must be one of {', '.join(METHODS)}, got '{method}'")
    model = copy.deepcopy(bb.model)  # shares nothing with the frozen backbone
    model.eval()
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        from peft import LoraConfig, inject_adapter_in_model
        targets = attention_targets(model)
        if not targets:
            raise ConfigError("LoRA: this model's attention projections are not recognised")
        conf = LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, lora_dropout=0.0,
                          target_modules=targets, fan_in_fan_out="c_attn" in targets)
        model = inject_adapter_in_model(conf, model)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.requires_grad_("lora_" in name)
                if "lora_A" in name:  # peft's init (kaiming uniform), from this run's generator
                    torch.nn.init.kaiming_uniform_(p, a=math.sqrt(5), generator=gen)
                elif "lora_B" in name:
                    torch.nn.init.zeros_(p)
        model.to(bb.device)
    return Backbone(f"{bb.name} ({method} fine-tuned copy)", model, bb.tokenizer, bb.kind,
                    bb.device, source=bb.source)


def finetune(bb: Backbone, template, verbalizer, fields, examples: list, cfg: TrainConfig,
             method: str, label_field: str = "label",
             callback: Optional[Callable[[dict], None]] = None,
             stop: Optional[threading.Event] = None) -> tuple:
    """Fine-tune a copy of ``bb`` (``method``: lora | full) on ``examples`` through the discrete
    ``template``'s label slot. Returns (prompt model over the trained copy, TrainResult)."""
    cfg.validate()
    if verbalizer is None:
        raise ConfigError("fine-tuning baselines need classes (a verbalizer)")
    emit = callback or (lambda e: None)
    fb = trainable_copy(bb, method, cfg, cfg.seed)
    pm = PromptModel(fb, template, verbalizer, "none", cfg.seed, fields)
    gold = torch.tensor(pm.gold_ids([str(ex[label_field]) for ex in examples]), device=pm.device)
    encs = pm.encode(examples)
    params = [p for p in fb.model.parameters() if p.requires_grad]
    lr = cfg.lora_lr if method == "lora" else cfg.full_lr
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n, bs = len(encs), min(cfg.batch_size, len(encs))
    order, cursor = torch.randperm(n, generator=gen), 0
    n_params = sum(p.numel() for p in params)
    emit({"type": "start", "steps": cfg.steps, "path": method, "n_train": n,
          "trainable_parameters": n_params})
    losses, status, t0 = [], "finished", time.perf_counter()
    for step in range(1, cfg.steps + 1):
        if stop is not None and stop.is_set():
            status = "stopped"
            break
        if cursor + bs > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        rows = order[cursor:cursor + bs]
        cursor += bs
        with _autocast(pm.device, cfg.precision):
            sc, _ = pm.scores(pm.collate([encs[int(i)] for i in rows]))
            loss = F.cross_entropy(sc.float(), gold[rows.to(pm.device)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        losses.append(float(loss.detach()))
        emit({"type": "step", "step": step, "steps": cfg.steps, "loss": losses[-1],
              "aux": None, "seconds": time.perf_counter() - t0})
    for p in params:
        p.requires_grad_(False)
    del opt
    seconds = time.perf_counter() - t0
    emit({"type": "end", "status": status, "steps": len(losses), "seconds": seconds})
    return pm, TrainResult(status, len(losses), seconds, losses, path=method,
                           trainable_parameters=n_params)
