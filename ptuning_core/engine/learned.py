"""Use a learned prompt: after training the encoder is dropped and only its outputs (the
pseudo-token embeddings) are kept. Load them from a stored run or an exported prompt file,
evaluate them on any data (the same numbers and JSON shape as a run), predict one example.

The encoder's weights are never read: the prompt model gets the stored embeddings as a fixed
prompt (``PromptModel.set_fixed_prompt``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors import SafetensorError

from ptuning_core.data import bundled as D
from ptuning_core.lm.label_tokens import FILE as LABELS_FILE
from ptuning_core.engine.evaluate import Score, evaluate, phase_progress, predict_scores
from ptuning_core.engine.experiment import RunSpec, resolve_fields, tag_breakdown
from ptuning_core.lm.model import PromptModel
from ptuning_core.engine.portable import PromptFileError, check_fits, label_tensors, read_prompt_file
from ptuning_core.stats import Paired, pair_predictions, paired_dict
from ptuning_core.store.runs import RunStore
from ptuning_core.template import parse, to_discrete
from ptuning_core.lm.verbalizer import Verbalizer

TOP_TOKENS = 5


class NoLearnedPrompt(PromptFileError):
    """The run exists but learned no prompt (a discrete template, or it did not finish)."""


@dataclass(frozen=True, eq=False)
class LearnedPrompt:
    """A learned prompt without its encoder, and what is known of where it was learned."""
    source: str  # the run id, or the prompt file's name
    name: str
    template: str
    discrete_template: str
    model: Optional[str]
    verbalizer: Optional[dict]  # None: open vocabulary
    label_field: str
    embeddings: torch.Tensor  # (pseudo tokens, hidden size)
    text_fields: Optional[list] = None  # the run's FIELD[=COLUMN] entries
    train_ref: Optional[str] = None
    eval_ref: Optional[str] = None  # the run's own evaluation data and its --max-eval
    max_eval: Optional[int] = None
    precision: str = "auto"  # the run's: fp32 | bf16 | auto
    # learned label tokens (``vectors``, ``bias``, ``init``), or None: the verbalizer's words
    label_vectors: Optional[dict] = None

    @property
    def fields(self) -> list:
        """The template's fields: one input each for a prediction."""
        return list(parse(self.template).fields)

    @property
    def label_space(self) -> str:
        return "classes" if self.verbalizer is not None else "vocab"


@dataclass(frozen=True)
class Evaluation:
    """A learned prompt and its discrete template evaluated on the same examples."""
    source: str
    eval_ref: str
    max_eval: Optional[int]
    model: str
    kind: str
    device: str
    label_space: str
    discrete: Score
    continuous: Score
    paired: Optional[Paired]
    by_tag: Optional[dict]  # {"discrete"|"continuous": {tag: {accuracy, n, ci95}}}
    warnings: tuple = ()

    def to_dict(self) -> dict:
        """The JSON shape of ``run``'s result (no training: ``train`` is null)."""
        return {"model": self.model, "kind": self.kind, "device": self.device,
                "label_space": self.label_space, "prompt": self.source, "eval": self.eval_ref,
                "max_eval": self.max_eval, "discrete": self.discrete.to_dict(),
                "continuous": self.continuous.to_dict(), "paired": paired_dict(self.paired),
                "by_tag": self.by_tag, "train": None, "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict) -> "Evaluation":
        p = d.get("paired")
        paired = Paired(p["n"], p["only_discrete_right"], p["only_continuous_right"],
                        p["mcnemar_p"]) if p else None
        return cls(d["prompt"], d["eval"], d.get("max_eval"), d["model"], d["kind"],
                   d["device"], d["label_space"], Score.from_dict(d["discrete"]),
                   Score.from_dict(d["continuous"]), paired, d.get("by_tag"),
                   tuple(d.get("warnings") or ()))


@dataclass(frozen=True)
class Prediction:
    """One example through a learned prompt: every class's probability (in the verbalizer's
    order), or the five most probable tokens (open vocabulary, most probable first)."""
    source: str
    label_space: str  # "classes" | "vocab"
    labels: tuple
    probs: tuple

    @property
    def top(self) -> str:
        return self.labels[max(range(len(self.probs)), key=self.probs.__getitem__)]

    def to_dict(self) -> dict:
        """``probs`` per class; open vocabulary: ``top`` tokens (two may read the same)."""
        d = {"prompt": self.source, "label_space": self.label_space, "prediction": self.top}
        if self.label_space == "classes":
            d["probs"] = {k: round(v, 6) for k, v in zip(self.labels, self.probs)}
        else:
            d["top"] = [{"token": k, "prob": round(v, 6)} for k, v in zip(self.labels,
                                                                          self.probs)]
        return d


# ---- loading -----------------------------------------------------------------------------
def load_prompt(source: str, store: Optional[RunStore] = None) -> LearnedPrompt:
    """A run id of ``store`` or the path of a ``.safetensors`` prompt file. PromptFileError
    (one line) when it is neither, or holds no learned prompt."""
    s = str(source or "").strip()
    if not s:
        raise PromptFileError("name a run id or a .safetensors prompt file")
    p = Path(s)
    if s.endswith(".safetensors") or p.exists() or "/" in s or "\\" in s:
        return from_file(p)
    return from_run(s, store or RunStore())


def from_run(rid: str, store: RunStore) -> LearnedPrompt:
    """A stored run's learned prompt (never a file: what the app server may read)."""
    run = store.get(rid, details=False)
    if run is None or run.get("kind") != "train":
        raise PromptFileError(f"no run {rid} (and no prompt file of that name)")
    try:
        t = store.tensors(rid)
    except (SafetensorError, OSError, ValueError) as e:  # a damaged file
        raise PromptFileError(f"the prompt of run {rid} cannot be read ({str(e)[:120]})") \
            from None
    emb = t.get("embeddings")
    try:
        lt = store.tensors(rid, LABELS_FILE) if emb is not None else {}
    except (SafetensorError, OSError, ValueError) as e:
        raise PromptFileError(f"the label tokens of run {rid} cannot be read ({str(e)[:120]})") \
            from None
    if emb is None:
        raise NoLearnedPrompt(f"run {rid} has no learned prompt (status {run['status']}: a "
                              f"discrete template, or training did not finish)")
    cfg = run["config"]
    tpl = cfg.get("template") or ""
    return LearnedPrompt(
        source=rid, name=run["name"], template=tpl,
        discrete_template=cfg.get("discrete_template") or to_discrete(tpl),
        model=cfg.get("model"), verbalizer=cfg.get("verbalizer"),
        label_field=cfg.get("label_field") or "label", embeddings=emb.float(),
        text_fields=cfg.get("text_fields"), train_ref=cfg.get("train"),
        eval_ref=cfg.get("eval"), max_eval=cfg.get("max_eval"),
        precision=run_precision(cfg.get("train_cfg") or {}), label_vectors=lt or None)


def run_precision(train_cfg: dict) -> str:
    """A stored run's precision (runs stored before it existed had ``amp``: off = fp32)."""
    return train_cfg.get("precision") or ("auto" if train_cfg.get("amp", True) else "fp32")


def from_file(path: Path) -> LearnedPrompt:
    """An exported prompt file's (read with safetensors only, checked by read_prompt_file)."""
    meta, tensors = read_prompt_file(path)
    tpl = meta["template"]
    dsrc = meta.get("discrete_template")
    return LearnedPrompt(
        source=path.name, name=str(meta.get("name") or path.stem), template=tpl,
        discrete_template=dsrc if isinstance(dsrc, str) and dsrc else to_discrete(tpl),
        model=meta.get("model"), verbalizer=meta.get("verbalizer"),
        label_field=meta.get("label_field") or "label",
        embeddings=tensors["embeddings"].float(), label_vectors=label_tensors(tensors) or None)


def model_name(lp: LearnedPrompt, requested: Optional[str] = None) -> str:
    """The model to run the prompt on: the one it was learned on. Asking for another is a
    PromptFileError (a learned prompt only means something to its own model)."""
    requested = (requested or "").strip()
    if requested and lp.model and requested != lp.model:
        raise PromptFileError(f"the prompt was learned on '{lp.model}', not '{requested}'; it "
                              f"only works on the model it was learned on")
    return lp.model or requested or "default"


def prompt_model(lp: LearnedPrompt, bb, fields: Optional[list] = None) -> PromptModel:
    """The prompt model with the stored embeddings as a fixed prompt (no trained encoder)."""
    check_fits(lp.template, lp.embeddings, bb)
    verb = Verbalizer.parse(lp.verbalizer) if lp.verbalizer is not None else None
    learned = lp.label_vectors is not None and verb is not None
    pm = PromptModel(bb, lp.template, verb, "none", 0, fields,
                     label_tokens="learned" if learned else "words")
    pm.set_fixed_prompt(lp.embeddings)
    if learned:
        try:
            pm.label_vectors.load(lp.label_vectors)
        except ValueError as e:
            raise PromptFileError(f"the prompt's learned label tokens do not fit: {e}") from None
    return pm


# ---- evaluation --------------------------------------------------------------------------
def _dataset(ref: Optional[str]) -> Optional[str]:
    return ref.rsplit(":", 1)[0] if ref and D.is_bundled_ref(ref) else None


def eval_rows(lp: LearnedPrompt, ref: str, max_eval: Optional[int] = None,
              text_fields: Optional[list] = None, label_field: Optional[str] = None) -> tuple:
    """(rows, fields, label field, warnings) of ``ref`` read as a run reads its evaluation data
    (same field mapping, same checks, first ``max_eval`` rows). A bundled dataset other than the
    run's own brings its own label field and column names."""
    info = D.bundled_info(ref)
    own = info is None or _dataset(ref) == _dataset(lp.train_ref or lp.eval_ref)
    spec = RunSpec(template=lp.template, train=ref, eval=ref, verbalizer=lp.verbalizer,
                   text_fields=text_fields if text_fields else (lp.text_fields if own else None),
                   label_field=label_field or (lp.label_field if own else None))
    fields, mapping = resolve_fields(spec, parse(lp.template))
    classes = Verbalizer.parse(lp.verbalizer).classes if lp.verbalizer is not None else None
    ds = D.validate(D.load_ref(ref), fields, spec.label_field, classes, mapping)
    rows = ds.rows[:max_eval] if max_eval else ds.rows
    if not rows:
        raise D.DataError(f"{ref} has no examples to evaluate on")
    return rows, fields, spec.label_field, [f"eval: {w}" for w in ds.warnings]


def evaluate_prompt(lp: LearnedPrompt, bb, ref: str, max_eval: Optional[int] = None,
                    text_fields: Optional[list] = None, label_field: Optional[str] = None,
                    callback: Optional[Callable[[dict], None]] = None,
                    data: Optional[tuple] = None) -> Evaluation:
    """The learned prompt (fixed, no encoder) and its discrete template on ``ref``: what a run
    reports, computed by the same code. On a run's own evaluation data (its ref and max_eval)
    the continuous accuracy is the run's. ``data``: ``eval_rows``' answer, read beforehand (a
    Ray worker gets the rows the driver read)."""
    emit = callback or (lambda e: None)
    rows, fields, lf, warnings = data if data is not None else \
        eval_rows(lp, ref, max_eval, text_fields, label_field)
    warnings = list(warnings)
    pm = prompt_model(lp, bb, fields)
    verb = pm.verbalizer
    dpm = PromptModel(bb, lp.discrete_template, verb, "none", 0, fields)
    warnings += [w for w in pm.warnings + dpm.warnings if w not in warnings]
    emit({"type": "phase", "phase": "discrete"})
    dres = evaluate(dpm, rows, lf, precision=lp.precision, progress=phase_progress(emit, "discrete"))
    emit({"type": "phase", "phase": "evaluate"})
    cres = evaluate(pm, rows, lf, precision=lp.precision, progress=phase_progress(emit, "evaluate"))
    return Evaluation(
        source=lp.source, eval_ref=ref, max_eval=max_eval, model=lp.model or bb.name,
        kind=bb.kind, device=str(bb.device), label_space=lp.label_space,
        discrete=Score.of(lp.discrete_template, dres), continuous=Score.of(lp.template, cres),
        paired=pair_predictions(dres["predictions"], cres["predictions"]),
        by_tag=tag_breakdown(rows, {"discrete": dres, "continuous": cres}),
        warnings=tuple(warnings))


def evaluate_recorded(lp: LearnedPrompt, bb, ref: str, store: RunStore, record_id: str,
                      max_eval: Optional[int] = None,
                      callback: Optional[Callable[[dict], None]] = None) -> Evaluation:
    """evaluate_prompt for a stored evaluation record: marked running, then finished with the
    result, or failed (with the error) if anything raises."""
    store.set_status(record_id, "running")
    try:
        ev = evaluate_prompt(lp, bb, ref, max_eval, callback=callback)
    except BaseException as e:
        store.set_status(record_id, "failed", error=f"{type(e).__name__}: {e}"[:2000])
        raise
    store.finish(record_id, "finished", ev.to_dict())
    return ev


# ---- one example -------------------------------------------------------------------------
def example_from(lp: LearnedPrompt, fields: dict) -> dict:
    """The example a prediction reads: one non-empty value per template field. DataError (one
    line) for a field missing, empty or not in the template."""
    need = lp.fields
    given = {str(k).strip(): v for k, v in (fields or {}).items()}
    extra = [k for k in given if k not in need]
    if extra:
        raise D.DataError(f"the template has no field '{extra[0]}'; its fields are "
                          f"{', '.join(need)}")
    missing = [f for f in need if not str(given.get(f) or "").strip()]
    if missing:
        raise D.DataError(f"give a text for every field of the template: {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} missing")
    return {f: str(given[f]) for f in need}


def predict(lp: LearnedPrompt, pm: PromptModel, fields: dict) -> Prediction:
    """Class probabilities (softmax over the class scores, as in evaluation), or the five most
    probable tokens of an open-vocabulary prompt."""
    ex = example_from(lp, fields)
    scores = predict_scores(pm, pm.encode([ex]), precision=lp.precision)[0]
    if pm.classes is not None:
        probs = torch.softmax(scores, -1)
        return Prediction(lp.source, "classes", tuple(pm.classes),
                          tuple(float(p) for p in probs))
    top = torch.topk(scores.exp(), TOP_TOKENS)
    tok = pm.backbone.tokenizer
    return Prediction(lp.source, "vocab", tuple(tok.decode([int(i)]).strip()
                                                for i in top.indices),
                      tuple(float(p) for p in top.values))
