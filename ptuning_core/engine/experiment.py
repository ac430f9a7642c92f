"""One experiment = train the continuous template, evaluate it and its discrete version on the
same examples, keep it. Shared by the CLI, the job queue and the app."""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from ptuning_core.data import bundled as D
from ptuning_core.lm import label_tokens
from ptuning_core.access import PermissionDenied
from ptuning_core.engine.evaluate import Score, evaluate, phase_progress
from ptuning_core.lm.model import PromptModel
from ptuning_core.profiling import section
from ptuning_core.lm.projections import discretize, drift, nearest_tokens
from ptuning_core.lm.registry import get_backbone
from ptuning_core.stats import by_tag, pair_predictions, paired_dict
from ptuning_core.engine.portable import PromptFileError
from ptuning_core.store.runs import RunStore, StoreError
from ptuning_core.template import Template, TemplateError, parse, to_discrete
from ptuning_core.engine.train import ConfigError, TrainConfig, train
from ptuning_core.lm.verbalizer import Verbalizer, VerbalizerError

# The project's own user-error classes: their message is one sentence for the user. Anything
# else (a plain ValueError, a RuntimeError ...) is a bug and must surface as one.
USER_ERRORS = (D.DataError, TemplateError, VerbalizerError, ConfigError, StoreError,
               PromptFileError, PermissionDenied)


FINETUNED = {"lora": "LoRA fine-tuned", "full": "fully fine-tuned"}


@dataclass
class RunSpec:
    template: str
    train: str  # data reference: file path or bundled NAME:SPLIT
    eval: str
    verbalizer: Optional[dict] = None  # None: open vocabulary (precision@1)
    model: str = "default"
    discrete_template: Optional[str] = None
    dev: Optional[str] = None
    # None: the template's fields. An entry "field=column" reads the template's {field} from the
    # data's column (e.g. "sentence=text" for a Hugging Face dataset with a 'text' column).
    text_fields: Optional[list] = None
    label_field: Optional[str] = None  # None: the bundled dataset's label field, else "label"
    shots: Optional[int] = None
    device: str = "auto"
    name: str = ""
    max_eval: Optional[int] = None
    resume: Optional[str] = None  # run id whose encoder weights to continue from
    train_cfg: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train_cfg"] = self.train_cfg.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        d = dict(d)
        d["train_cfg"] = TrainConfig.from_dict(d.get("train_cfg", {}))
        return cls(**d)


@dataclass
class Prepared:
    spec: RunSpec
    verbalizer: Optional[Verbalizer]
    train_rows: list
    dev_rows: list
    eval_rows: list
    fields: list
    warnings: list
    template: Template  # the continuous template, parsed once here and passed on
    discrete: Template  # the discrete one (given, or the continuous one made discrete)
    discrete_source: str


def prepare(spec: RunSpec) -> Prepared:
    """Parse and validate everything that does not need the model. Raises user errors."""
    spec.train_cfg.validate()
    tpl = parse(spec.template)
    fields, mapping = resolve_fields(spec, tpl)
    dtpl = parse(spec.discrete_template) if spec.discrete_template else None
    verb = Verbalizer.parse(spec.verbalizer) if spec.verbalizer is not None else None
    if verb is None and spec.train_cfg.finetune:
        raise ConfigError("the fine-tuning baselines need classes: give a verbalizer")
    if verb is None and spec.train_cfg.label_tokens == "learned":
        raise ConfigError("learned label tokens need classes: give a verbalizer (one vector is "
                          "learned per class)")
    classes = verb.classes if verb else None
    warnings: list = []

    def load(ref, role, min_classes=1):
        ds = D.validate(D.load_ref(ref), fields, spec.label_field, classes, mapping,
                        min_classes=min_classes)
        warnings.extend(f"{role}: {w}" for w in ds.warnings)
        return ds.rows

    tpl.check_fields(fields)
    if dtpl is not None:
        dtpl.check_fields(fields)
    train_rows = load(spec.train, "train", 2 if verb else 1)
    eval_rows = load(spec.eval, "eval")
    dev_rows = load(spec.dev, "dev") if spec.dev else []
    if spec.shots:
        tr, dv = D.sample_k_shot(train_rows, spec.shots, spec.train_cfg.seed, spec.label_field,
                                 vocab=verb is None)
        train_rows = tr
        if not spec.dev:
            dev_rows = dv
    if spec.max_eval:
        eval_rows = eval_rows[:spec.max_eval]
    dsrc = spec.discrete_template or to_discrete(tpl)
    return Prepared(spec, verb, train_rows, dev_rows, eval_rows, fields, warnings, tpl,
                    dtpl or parse(dsrc), dsrc)


def resolve_fields(spec: RunSpec, tpl) -> tuple:
    """The template's text fields and a {field: column} mapping, and the label field (set on
    ``spec`` when it was left to auto). A bundled dataset brings its own label field, and its
    text columns fill the template's fields in order when the names differ."""
    info = D.bundled_info(spec.train)
    if not spec.label_field:
        spec.label_field = info["label_field"] if info else "label"
    fields, mapping = [], {}
    for entry in spec.text_fields or []:
        name, eq, col = (x.strip() for x in str(entry).partition("="))
        if not name or (eq and not col):
            raise D.DataError(f"'{entry}' is not a text field (NAME or NAME=COLUMN)")
        fields.append(name)
        if eq:
            mapping[name] = col
    fields = fields or list(tpl.fields)
    if info and not mapping:
        spare = [f for f in info["fields"] if f not in fields]
        for f in fields:
            if f not in info["fields"] and spare:
                mapping[f] = spare.pop(0)
    return fields, mapping


def check_against_model(spec: RunSpec, prep: Prepared, bb) -> list:
    """Compile both templates and the verbalizer for the model: label words it cannot encode,
    colliding label words, templates longer than its context are refused here, with the reason,
    before anything is queued. Returns the warnings."""
    from ptuning_core.lm.encoding import compile_layout, encode
    warnings = []
    for tpl in (prep.template, prep.discrete):
        lay = compile_layout(tpl, bb.tokenizer, bb.kind, prep.fields)
        if prep.verbalizer is not None:
            warnings += prep.verbalizer.compile(lay, bb.tokenizer).warnings
        if prep.train_rows:
            enc = encode(lay, prep.train_rows[0], bb.tokenizer, bb.max_length)
            if enc.truncated:
                warnings.append("some examples are longer than the model's context and are cut")
        warnings += [w for w in lay.warnings if w not in warnings]
    return warnings


def run_experiment(spec: RunSpec, callback: Optional[Callable[[dict], None]] = None,
                   stop: Optional[threading.Event] = None, store: Optional[RunStore] = None,
                   run_id: Optional[str] = None, prepared: Optional[Prepared] = None,
                   keep_details: bool = False) -> dict:
    """Train the continuous template and evaluate it, then evaluate the discrete one on the same
    examples and pair the two. The result is stored when ``store`` and ``run_id`` are given;
    ``keep_details``: the returned result also carries the per-example ``details`` (experiments
    pair them across variants)."""
    emit = callback or (lambda e: None)
    with section("prepare"):
        prep = prepared or prepare(spec)
    cfg = spec.train_cfg
    with section("load model"):
        bb = get_backbone(spec.model, spec.device)
    tpl, dsrc = prep.template, prep.discrete_source
    warnings = list(prep.warnings)
    result: dict = {"model": spec.model, "kind": bb.kind, "device": str(bb.device),
                    "label_space": "classes" if prep.verbalizer else "vocab",
                    "n_train": len(prep.train_rows), "n_dev": len(prep.dev_rows),
                    "seed": cfg.seed}
    dpm = PromptModel(bb, prep.discrete, prep.verbalizer, "none", cfg.seed, prep.fields)
    warnings += dpm.warnings
    details: dict = {}
    tensors = {}
    result["continuous"] = None
    result["nearest_tokens"] = []
    result["train"] = None
    status = "finished"
    if cfg.finetune:  # a fine-tuning baseline: a trained copy of the model, discrete template
        from ptuning_core.engine.finetune import finetune
        emit({"type": "phase", "phase": "train"})
        fpm, tr = finetune(bb, prep.discrete, prep.verbalizer, prep.fields, prep.train_rows,
                           cfg, cfg.finetune, spec.label_field, emit, stop)
        status = "stopped" if tr.status == "stopped" else "finished"
        emit({"type": "phase", "phase": "evaluate"})
        cres = evaluate(fpm, prep.eval_rows, spec.label_field, precision=cfg.precision,
                        progress=phase_progress(emit, "evaluate"), reuse=False)
        del fpm  # the trained copy goes; the shared backbone was never touched
        result["method"] = cfg.finetune
        result["continuous"] = Score.of(f"{dsrc} ({FINETUNED[cfg.finetune]})", cres).to_dict()
        result["train"] = {"steps": tr.steps, "seconds": round(tr.seconds, 3),
                           "seconds_per_step": round(tr.seconds_per_step, 4),
                           "losses": [round(x, 5) for x in tr.losses], "dev": [],
                           "status": tr.status, "path": tr.path,
                           "trainable_parameters": tr.trainable_parameters}
        details["continuous"] = cres
    elif tpl.has_pseudo:
        pm = PromptModel(bb, tpl, prep.verbalizer, cfg.encoder, cfg.seed, prep.fields,
                         label_tokens=cfg.label_tokens, label_init=cfg.label_init)
        warnings += [w for w in pm.warnings if w not in warnings]
        if spec.resume:
            resume_encoder(pm, spec, store)
        init = pm.encoder.base.detach().clone() if pm.encoder.kind != "none" else \
            pm.encoder.embeddings.detach().clone()
        pending: list = []
        last_flush = [time.monotonic()]

        def on_event(e):
            if store is not None and run_id is not None and e["type"] in ("step", "eval"):
                pending.append((e["step"], e.get("loss"), e.get("dev_accuracy")))
                if time.monotonic() - last_flush[0] > 1.0 or e["type"] == "eval":
                    with section("store writes"):
                        store.log_steps(run_id, pending[:])
                    pending.clear()
                    last_flush[0] = time.monotonic()
            emit(e)

        emit({"type": "phase", "phase": "train"})
        tr = train(pm, prep.train_rows, cfg, spec.label_field, prep.dev_rows or None,
                   on_event, stop)
        if store is not None and run_id is not None:
            store.log_steps(run_id, pending)
        status = "stopped" if tr.status == "stopped" else "finished"
        emit({"type": "phase", "phase": "evaluate"})
        # The method drops the encoder after training: the run is scored with the vectors it
        # stores (computed once, in full precision, outside autocast), so evaluating the stored
        # prompt later (learned.evaluate_prompt) gives exactly the reported numbers on any device.
        emb = pm.prompt_embeddings().detach().float().cpu()
        pm.set_fixed_prompt(emb)
        with section("continuous evaluation"):
            cres = evaluate(pm, prep.eval_rows, spec.label_field, precision=cfg.precision,
                            progress=phase_progress(emit, "evaluate"))
        with section("nearest tokens"):
            near = nearest_tokens(emb, bb.embeddings, bb.tokenizer, k=5)
        result["continuous"] = Score.of(spec.template, cres).to_dict()
        result["train"] = {"steps": tr.steps, "seconds": round(tr.seconds, 3),
                           "seconds_per_step": round(tr.seconds_per_step, 4),
                           "losses": [round(x, 5) for x in tr.losses],
                           "dev": tr.dev, "status": tr.status, "path": tr.path,
                           "trainable_parameters": tr.trainable_parameters}
        result["nearest_tokens"] = [[{"token": t["token"], "cosine": t["cosine"]} for t in row]
                                    for row in near]
        result["drift"] = drift(emb, init.float().cpu())
        result["init_tokens"] = [None if i is None else bb.tokenizer.decode([i])
                                 for i in pm.layout.pseudo_init_ids]
        result["discretized_template"] = discretize(pm.layout, near)
        details["continuous"] = cres
        tensors = {"prompt.safetensors": {"embeddings": emb, "init": init.float().cpu()},
                   "encoder.safetensors": {k: v.float().cpu() for k, v in
                                           pm.encoder.state_dict().items()}}
        if tr.snapshots:
            tensors["trajectory.safetensors"] = {f"step_{s:07d}": t for s, t in tr.snapshots}
        if pm.label_vectors is not None:
            lt = pm.label_vectors.tensors()
            tensors[label_tokens.FILE] = lt
            result["label_tokens"] = label_summary(pm, lt)
    # The discrete template is evaluated after training, on the same examples, so the loss
    # curve starts within seconds of the request (this evaluation does not depend on training).
    emit({"type": "phase", "phase": "discrete"})
    with section("discrete evaluation"):
        dres = evaluate(dpm, prep.eval_rows, spec.label_field, precision=cfg.precision,
                        progress=phase_progress(emit, "discrete"))
    result["discrete"] = Score.of(dsrc, dres).to_dict()
    emit({"type": "discrete", "accuracy": dres["accuracy"]})
    details = {"discrete": dres, **details}  # discrete first, as every reader lists them
    cont = details.get("continuous")
    result["paired"] = paired_dict(pair_predictions(dres["predictions"], cont["predictions"])) \
        if cont is not None else None
    result.setdefault("label_tokens", None)
    result["by_tag"] = tag_breakdown(prep.eval_rows, details)
    result["warnings"] = warnings
    result["status"] = status
    if store is not None and run_id is not None:
        result["run_dir"] = str(store.run_dir(run_id))
        full = dict(result, details={k: {kk: vv for kk, vv in v.items()} for k, v in
                                     details.items()})
        with section("store writes"):
            store.finish(run_id, status, full, tensors)
    if keep_details:
        result["details"] = details
    return result


def label_summary(pm: PromptModel, t: dict) -> dict:
    """Learned label tokens of a run: per class, its nearest vocabulary tokens and how far it
    moved from where it started (cosine)."""
    near = label_tokens.nearest(t["vectors"], pm.backbone.model, pm.backbone.tokenizer, k=5)
    moved = label_tokens.cosine_to_init(t)
    return {"mode": "learned", "classes": list(pm.classes), "cosine_to_init": moved,
            "nearest": [[{"token": x["token"], "cosine": x["cosine"]} for x in row]
                        for row in near], "init": pm.label_init}


def tag_breakdown(eval_rows: list, details: dict, field: str = "tag") -> Optional[dict]:
    """Accuracy with its interval per ``tag`` of the evaluation rows, for each prompt evaluated;
    None when the data has no tags."""
    tags = {i: r.get(field) for i, r in enumerate(eval_rows) if r.get(field)}
    if not tags:
        return None
    return {k: by_tag(v["predictions"], tags) for k, v in details.items()}


def resume_encoder(pm: PromptModel, spec: RunSpec, store: Optional[RunStore]) -> None:
    """Load a stored run's encoder weights into ``pm`` (same template, model and encoder)."""
    store = store or RunStore()
    old = store.get(spec.resume, details=False)
    if old is None:
        raise ConfigError(f"no run {spec.resume} to resume")
    oc = old["config"]
    if oc.get("template") != spec.template or oc.get("model") != spec.model:
        raise ConfigError("a run can only be resumed with the same template and model")
    state = store.tensors(spec.resume, "encoder.safetensors")
    mine = pm.encoder.state_dict()
    if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
        raise ConfigError(f"run {spec.resume} used another encoder "
                         f"({(oc.get('train_cfg') or {}).get('encoder')}); pick the same one")
    pm.encoder.load_state_dict({k: v.to(mine[k].dtype) for k, v in state.items()})
    if pm.label_vectors is not None:
        lt = store.tensors(spec.resume, label_tokens.FILE)
        if lt:
            try:
                pm.label_vectors.load(lt)
            except ValueError as e:
                raise ConfigError(f"run {spec.resume}: {e}") from None


def run_recorded(spec: RunSpec, store: RunStore, run_id: str, **kw) -> dict:
    """run_experiment for a stored run: it is marked running, and failed (with the error) if
    anything raises. Used by the CLI, the job queue and comparisons."""
    store.set_status(run_id, "running")
    try:
        return run_experiment(spec, store=store, run_id=run_id, **kw)
    except BaseException as e:
        store.set_status(run_id, "failed", error=f"{type(e).__name__}: {e}"[:2000])
        raise


def submit_and_run(spec: RunSpec, store: RunStore, owner: str = "cli", **kw) -> dict:
    rid = store.create(spec.name or spec.template[:60], spec.to_dict(), owner, status="running")
    return run_recorded(spec, store, rid, **kw)
