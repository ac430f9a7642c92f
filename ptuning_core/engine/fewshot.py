"""Few-shot sweep: methods x k x seeds on the same paired samples (LM-BFF protocol)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ptuning_core import config as C
from ptuning_core.data import bundled as D
from ptuning_core.engine.evaluate import evaluate
from ptuning_core.engine.finetune import finetune
from ptuning_core.lm.model import PromptModel
from ptuning_core.lm.registry import get_backbone
from ptuning_core.stats import ci95, mean_std
from ptuning_core.template import parse, to_discrete
from ptuning_core.engine.train import TrainConfig, train
from ptuning_core.lm.verbalizer import Verbalizer

METHODS = ("discrete", "ptuning", "prompt-tuning", "linear-probe", "ptuning-learned-labels",
           "lora", "full-finetune")
DEFAULT_METHODS = ("discrete", "ptuning", "prompt-tuning", "linear-probe")
# the fine-tuning baselines (finetune.py): a trained copy of the model, discrete template
FINETUNE_METHODS = {"lora": "lora", "full-finetune": "full"}


@dataclass
class SweepSpec:
    dataset: str
    template: Optional[str] = None
    model: str = "default"
    ks: list = field(default_factory=lambda: list(C.FEWSHOT_KS))
    seeds: list = field(default_factory=lambda: list(C.SEEDS[:C.N_SEEDS]))
    methods: list = field(default_factory=lambda: list(DEFAULT_METHODS))
    steps: int = field(default_factory=lambda: TrainConfig().steps)
    lr: float = field(default_factory=lambda: TrainConfig().lr)
    batch_size: int = field(default_factory=lambda: TrainConfig().batch_size)
    max_eval: Optional[int] = C.MAX_EVAL
    device: str = "auto"
    # label tokens of the ptuning / prompt-tuning methods (ptuning-learned-labels: learned)
    label_tokens: str = field(default_factory=lambda: TrainConfig().label_tokens)
    label_init: str = field(default_factory=lambda: TrainConfig().label_init)
    keep_correct: bool = False  # each row also lists right/wrong per test example (paired tests)
    precision: str = field(default_factory=lambda: TrainConfig().precision)


def linear_probe_features(pm: PromptModel, rows: list, batch_size: int = 32) -> np.ndarray:
    """Frozen features: the hidden state at the label slot of the discrete template."""
    encs = pm.encode(rows)
    feats = []
    with torch.inference_mode():
        for s in range(0, len(encs), batch_size):
            b = pm.collate(encs[s:s + batch_size])
            emb = pm.embed(b.input_ids, b.pseudo_idx, None)
            h = pm.body(emb, b.attention_mask, b.position_ids)
            feats.append(h[torch.arange(h.shape[0]), b.label_pos].float().cpu().numpy())
    return np.concatenate(feats)


def sweep_inputs(spec: SweepSpec) -> dict:
    """Check a sweep and read its data (no model needed): the dataset's manifest entry and its
    train and test rows. What a worker elsewhere needs besides the model (``SweepContext``)."""
    info = D.dataset_info(spec.dataset)
    if info.get("label_space") != "classes":
        raise D.DataError("few-shot sweeps need a classification dataset")
    for m in spec.methods:
        if m not in METHODS:
            raise D.DataError(f"unknown method '{m}': use {', '.join(METHODS)}")
    if spec.template is not None and not parse(spec.template).has_pseudo:
        raise D.DataError("the sweep template needs pseudo tokens")
    verb = Verbalizer.parse(info["verbalizer"])
    lf, fields = info["label_field"], info["fields"]
    train_all = D.validate(D.load_ref(f"{spec.dataset}:train"), fields, lf, verb.classes).rows
    test = D.validate(D.load_ref(f"{spec.dataset}:test"), fields, lf, verb.classes).rows
    if spec.max_eval:
        test = test[:spec.max_eval]
    return {"info": info, "train": train_all, "test": test}


def sweep_cells(spec: SweepSpec) -> list:
    """The sweep's cells (k, seed, method) in the order they are run and reported."""
    return [(k, seed, m) for k in spec.ks for seed in spec.seeds for m in spec.methods]


class SweepContext:
    """One sweep on one backbone: the model, the parsed template and verbalizer, and what every
    cell shares (the discrete accuracy, the linear probe's test features), computed once. A cell
    depends only on its (k, seed, method), so cells may run in any order or process."""

    def __init__(self, spec: SweepSpec, inputs: dict):
        info = inputs["info"]
        self.spec = spec
        self.bb = get_backbone(spec.model, spec.device)
        self.tpl = spec.template or info["ptuning_templates"][self.bb.kind]
        if not parse(self.tpl).has_pseudo:
            raise D.DataError("the sweep template needs pseudo tokens")
        self.verb = Verbalizer.parse(info["verbalizer"])
        self.lf, self.fields = info["label_field"], info["fields"]
        self.train_all, self.test = inputs["train"], inputs["test"]
        self.dpm = PromptModel(self.bb, to_discrete(self.tpl), self.verb, "none", 0, self.fields)
        self.disc_res = None
        self.test_feats = None

    def cell(self, k: int, seed: int, m: str,
             stop: Optional[threading.Event] = None) -> dict:
        from sklearn.linear_model import LogisticRegression
        spec, lf, test, bb = self.spec, self.lf, self.test, self.bb
        tr, dv = D.sample_k_shot(self.train_all, k, seed, lf)
        res = None
        if m == "discrete":
            if self.disc_res is None:
                self.disc_res = evaluate(self.dpm, test, lf, precision=spec.precision)
            res = self.disc_res
        elif m == "linear-probe":
            if self.test_feats is None:
                self.test_feats = linear_probe_features(self.dpm, test)
            X = linear_probe_features(self.dpm, tr)
            y = [r[lf] for r in tr]
            clf = LogisticRegression(max_iter=2000, C=1.0).fit(X, y)
            hits = clf.predict(self.test_feats) == np.array([r[lf] for r in test])
            acc, correct = float(hits.mean()), [bool(x) for x in hits]
        elif m in FINETUNE_METHODS:
            cfg = TrainConfig(steps=spec.steps, seed=seed, batch_size=spec.batch_size,
                              snapshot_every=0, precision=spec.precision)
            fpm, _ = finetune(bb, to_discrete(self.tpl), self.verb, self.fields, tr, cfg,
                              FINETUNE_METHODS[m], lf, stop=stop)
            res = evaluate(fpm, test, lf, reuse=False)  # a trained copy: nothing shared
            del fpm  # the trained copy; the shared backbone was never touched
        else:
            enc = "none" if m == "prompt-tuning" else "lstm"
            labels = "learned" if m == "ptuning-learned-labels" else spec.label_tokens
            pm = PromptModel(bb, self.tpl, self.verb, enc, seed, self.fields,
                             label_tokens=labels, label_init=spec.label_init)
            train(pm, tr, TrainConfig(steps=spec.steps, lr=spec.lr, seed=seed,
                                      batch_size=spec.batch_size, encoder=enc,
                                      snapshot_every=0, label_tokens=labels,
                                      label_init=spec.label_init, precision=spec.precision),
                  lf, stop=stop)
            res = evaluate(pm, test, lf, precision=spec.precision)
        if res is not None:
            acc = res["accuracy"]
            correct = [p["correct"] for p in res["predictions"]]
        row = {"method": m, "k": k, "seed": seed, "accuracy": acc,
               "ci95": ci95(acc, len(test)), "n_test": len(test)}
        if spec.keep_correct:
            row["correct"] = correct
        return row


def run_sweep(spec: SweepSpec, callback: Optional[Callable[[dict], None]] = None,
              stop: Optional[threading.Event] = None) -> list:
    emit = callback or (lambda e: None)
    ctx = SweepContext(spec, sweep_inputs(spec))
    cells = sweep_cells(spec)
    rows = []
    for k, seed, m in cells:
        if stop is not None and stop.is_set():
            return rows
        row = ctx.cell(k, seed, m, stop)
        rows.append(row)
        emit({"type": "cell", **row, "done": len(rows), "total": len(cells)})
    return rows


def summarize(rows: list) -> list:
    groups: dict = {}
    for r in rows:
        if r.get("accuracy") is None:  # a cell that could not be run (its ``error`` says why)
            continue
        groups.setdefault((r["method"], r["k"]), []).append(r["accuracy"])
    out = []
    for (m, k), accs in sorted(groups.items(), key=lambda x: (x[0][0], x[0][1])):
        mean, sd = mean_std(accs)  # the sample sd, as Experiments and the benches report it
        out.append({"method": m, "k": k, "mean": mean, "std": sd, "n": len(accs)})
    return out
