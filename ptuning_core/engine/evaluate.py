"""Evaluation: accuracy / precision@1, macro-F1, confusion matrix, per-example predictions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ptuning_core.store import evalcache
from ptuning_core.lm.model import PromptModel
from ptuning_core.stats import ci95


@dataclass(frozen=True)
class Score:
    """One prompt's headline numbers on an evaluation set: the ``discrete`` / ``continuous``
    blocks of a result (``run`` and ``eval`` print the same shape)."""
    template: str
    accuracy: float  # precision@1 in open-vocabulary mode
    ci95: tuple  # 95% Wilson interval (lo, hi)
    n: int
    skipped: int = 0
    macro_f1: Optional[float] = None

    @classmethod
    def of(cls, template: str, res: dict) -> "Score":
        """From an ``evaluate`` result."""
        return cls(template, res["accuracy"], tuple(res["ci95"]), res["n"], res["skipped"],
                   res["macro_f1"])

    @classmethod
    def from_dict(cls, d: dict) -> "Score":
        return cls(d["template"], d["accuracy"], tuple(d["ci95"]), d["n"], d.get("skipped", 0),
                   d.get("macro_f1"))

    def to_dict(self) -> dict:
        return {"template": self.template, "accuracy": self.accuracy, "ci95": list(self.ci95),
                "n": self.n, "skipped": self.skipped, "macro_f1": self.macro_f1}


def predict_scores(pm: PromptModel, encs: list, batch_size: int = 32,
                   precision: Optional[str] = None, progress=None, reuse: bool = True):
    """Scores for each encoding, batched by length (sorted) under inference mode.
    ``precision``: fp32 | bf16 | auto (None: the model's current one).
    ``reuse``: on a causal LM, each example's own text (the tokens before any prompt token) runs
    through the frozen LM once per process (``kvcache.SHARED``): the discrete and the continuous
    evaluation, and every student's run on the same examples, share its keys/values.
    ``progress(done, total)`` is called after each batch."""
    if precision is not None:
        pm.set_precision(precision)
    if pm.device.type == "cuda":
        batch_size = max(batch_size, 128)  # a GPU wants bigger batches; memory is no concern here
    split = pm.frozen_prefix_lengths(encs) if reuse else None
    order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
    out = [None] * len(encs)
    with torch.inference_mode(), pm.autocast():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            part = [encs[i] for i in idx]
            if split is None:
                sc, _ = pm.scores(pm.collate(part))
            else:
                ns = [split[i] for i in idx]
                pc = pm.build_prefix_cache(part, lengths=ns)
                sc, _ = pm.fast_scores(part, pc, torch.arange(len(part), device=pm.device),
                                       split=ns)
            sc = sc.float().cpu()
            for j, i in enumerate(idx):
                out[i] = sc[j]
            if progress is not None:
                progress(min(s + batch_size, len(order)), len(order))
    return out


def macro_f1(gold: list, pred: list, n_classes: int) -> float:
    f1s = []
    for c in range(n_classes):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s) if f1s else 0.0


def evaluate(pm: PromptModel, examples: list, label_field: str = "label", batch_size: int = 32,
             text_fields=None, precision: Optional[str] = None, progress=None,
             reuse: bool = True) -> dict:
    """Accuracy (precision@1 in open-vocabulary mode) with its interval, macro-F1, the
    confusion matrix and per-example predictions.

    ``reuse`` (default): work that does not depend on a prompt is done once. A template with no
    pseudo token (the discrete baseline) is looked up in, and stored to, the run store's
    ``evalcache`` (the same model, template, verbalizer, data and precision give the same
    result); the examples' own text goes through the frozen LM once per process. Pass False for
    a model whose weights are not the shared backbone's (a fine-tuned copy)."""
    key = None
    if reuse and _is_discrete(pm):
        if precision is not None:
            pm.set_precision(precision)
        tf = text_fields or pm.layout.template.fields
        key = evalcache.EvalCache.key(
            model=evalcache.model_fingerprint(pm.backbone), template=pm.layout.template.source,
            verbalizer=pm.verbalizer.to_dict() if pm.verbalizer is not None else None,
            data=evalcache.data_hash(examples, label_field, tf), precision=pm.precision)
        hit = evalcache.current().get(key)
        if hit is not None:
            if progress is not None:
                progress(len(examples), len(examples))
            return hit
    res = _evaluate(pm, examples, label_field, batch_size, text_fields, precision, progress,
                    reuse)
    if key is not None:
        evalcache.current().put(key, res)
    return res


def _is_discrete(pm: PromptModel) -> bool:
    return (pm.encoder is None and pm.label_vectors is None
            and pm.prompt_embeddings() is None)


def _evaluate(pm, examples, label_field, batch_size, text_fields, precision, progress,
              reuse) -> dict:
    labels = [str(ex[label_field]) for ex in examples]
    gold = pm.gold_ids(labels)
    tok = pm.backbone.tokenizer
    text_fields = text_fields or pm.layout.template.fields
    keep = [i for i, g in enumerate(gold) if g >= 0]
    skipped = len(examples) - len(keep)
    encs = pm.encode([examples[i] for i in keep])
    scores = predict_scores(pm, encs, batch_size, precision, progress, reuse)
    preds = []
    if pm.cverb is not None:
        classes = pm.cverb.classes
        C = len(classes)
        confusion = [[0] * C for _ in range(C)]
        gp = []
        for j, i in enumerate(keep):
            probs = torch.softmax(scores[j], -1)
            p = int(probs.argmax())
            confusion[gold[i]][p] += 1
            gp.append((gold[i], p))
            preds.append({"index": i, "text": " | ".join(str(examples[i].get(f, ""))
                                                         for f in text_fields),
                          "gold": labels[i], "pred": classes[p], "correct": p == gold[i],
                          "probs": {c: round(float(probs[k]), 4) for k, c in enumerate(classes)}})
        n = len(gp)
        acc = sum(g == p for g, p in gp) / n if n else 0.0
        f1 = macro_f1([g for g, _ in gp], [p for _, p in gp], C)
        return {"accuracy": acc, "ci95": ci95(acc, n), "macro_f1": f1, "n": n, "skipped": skipped,
                "classes": classes, "confusion": confusion, "predictions": preds}
    correct = 0
    for j, i in enumerate(keep):
        lp = scores[j]
        top = torch.topk(lp, 5)
        p = int(top.indices[0])
        ok = p == gold[i]
        correct += ok
        preds.append({"index": i, "text": " | ".join(str(examples[i].get(f, ""))
                                                     for f in text_fields),
                      "gold": labels[i], "pred": tok.decode([p]).strip(), "correct": bool(ok),
                      "top5": [tok.decode([int(t)]).strip() for t in top.indices]})
    n = len(keep)
    acc = correct / n if n else 0.0
    return {"accuracy": acc, "ci95": ci95(acc, n), "macro_f1": None, "n": n, "skipped": skipped,
            "classes": None, "confusion": None, "predictions": preds}


def phase_progress(emit: Callable[[dict], None], phase: str) -> Callable[[int, int], None]:
    """A progress callback that reports ``done``/``total`` of a phase as an event."""
    return lambda done, total: emit({"type": "phase", "phase": phase, "done": done,
                                     "total": total})
