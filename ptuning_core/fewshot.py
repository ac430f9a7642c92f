"""Few-shot sweep: methods x k x seeds on the same paired samples (LM-BFF protocol)."""
from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from . import data as D
from .evaluate import evaluate
from .model import PromptModel
from .registry import get_backbone
from .stats import ci95
from .template import parse, to_discrete
from .train import TrainConfig, train
from .verbalizer import Verbalizer

METHODS = ("discrete", "ptuning", "prompt-tuning", "linear-probe")


@dataclass
class SweepSpec:
    dataset: str
    template: Optional[str] = None
    model: str = "default"
    ks: list = field(default_factory=lambda: [4, 8, 16])
    seeds: list = field(default_factory=lambda: [13, 21, 42])
    methods: list = field(default_factory=lambda: list(METHODS))
    steps: int = field(default_factory=lambda: TrainConfig().steps)
    lr: float = field(default_factory=lambda: TrainConfig().lr)
    batch_size: int = field(default_factory=lambda: TrainConfig().batch_size)
    max_eval: Optional[int] = 200
    device: str = "auto"
    precision: str = field(default_factory=lambda: TrainConfig().precision)


def linear_probe_features(pm: PromptModel, rows: list, batch_size: int = 32) -> np.ndarray:
    """Frozen features: the hidden state at the label slot of the discrete template."""
    encs = pm.encode(rows)
    feats = []
    with torch.inference_mode():
        for s in range(0, len(encs), batch_size):
            b = pm.collate(encs[s:s + batch_size])
            emb = pm._embed(b.input_ids, b.pseudo_idx, None)
            h, _ = pm._run_body(emb, b.attention_mask, b.position_ids)
            feats.append(h[torch.arange(h.shape[0]), b.label_pos].float().cpu().numpy())
    return np.concatenate(feats)


def run_sweep(spec: SweepSpec, callback: Optional[Callable[[dict], None]] = None,
              stop: Optional[threading.Event] = None) -> list:
    from sklearn.linear_model import LogisticRegression
    emit = callback or (lambda e: None)
    info = D.dataset_info(spec.dataset)
    if info.get("label_space") != "classes":
        raise D.DataError("few-shot sweeps need a classification dataset")
    for m in spec.methods:
        if m not in METHODS:
            raise D.DataError(f"unknown method '{m}': use {', '.join(METHODS)}")
    bb = get_backbone(spec.model, spec.device)
    tpl = spec.template or info["ptuning_templates"][bb.kind]
    if not parse(tpl).has_pseudo:
        raise D.DataError("the sweep template needs pseudo tokens")
    verb = Verbalizer.parse(info["verbalizer"])
    lf = info["label_field"]
    fields = info["fields"]
    train_all = D.validate(D.load_ref(f"{spec.dataset}:train"), fields, lf, verb.classes).rows
    test = D.validate(D.load_ref(f"{spec.dataset}:test"), fields, lf, verb.classes).rows
    if spec.max_eval:
        test = test[:spec.max_eval]
    rows = []
    dpm = PromptModel(bb, to_discrete(tpl), verb, "none", 0, fields)
    disc_acc = None
    total = len(spec.ks) * len(spec.seeds) * len(spec.methods)
    done = 0
    test_feats = None
    for k in spec.ks:
        for seed in spec.seeds:
            tr, dv = D.sample_k_shot(train_all, k, seed, lf)
            for m in spec.methods:
                if stop is not None and stop.is_set():
                    return rows
                if m == "discrete":
                    if disc_acc is None:
                        disc_acc = evaluate(dpm, test, lf,
                                            precision=spec.precision)["accuracy"]
                    acc = disc_acc
                elif m == "linear-probe":
                    if test_feats is None:
                        test_feats = linear_probe_features(dpm, test)
                    X = linear_probe_features(dpm, tr)
                    y = [r[lf] for r in tr]
                    clf = LogisticRegression(max_iter=2000, C=1.0).fit(X, y)
                    acc = float((clf.predict(test_feats) == np.array([r[lf] for r in test])).mean())
                else:
                    enc = "lstm" if m == "ptuning" else "none"
                    pm = PromptModel(bb, tpl, verb, enc, seed, fields)
                    train(pm, tr, TrainConfig(steps=spec.steps, lr=spec.lr, seed=seed,
                                              batch_size=spec.batch_size, encoder=enc,
                                              snapshot_every=0, precision=spec.precision),
                          lf, stop=stop)
                    acc = evaluate(pm, test, lf)["accuracy"]
                row = {"method": m, "k": k, "seed": seed, "accuracy": acc,
                       "ci95": ci95(acc, len(test)), "n_test": len(test)}
                rows.append(row)
                done += 1
                emit({"type": "cell", **row, "done": done, "total": total})
    return rows


def summarize(rows: list) -> list:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["k"]), []).append(r["accuracy"])
    out = []
    for (m, k), accs in sorted(groups.items(), key=lambda x: (x[0][0], x[0][1])):
        out.append({"method": m, "k": k, "mean": statistics.fmean(accs),
                    "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0, "n": len(accs)})
    return out
