"""Typed results the pages draw (dataclasses, never nested dicts picked apart in a page), and the
computations that build them from a backbone and the run store. ``Service`` wraps each one
(caches, the queue, checks); pages reach them only through the service."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ptuning_core.engine.retest import RetestResult, load_prompt, retest, retest_rows  # noqa: F401 (the door's)
from ptuning_core.stats import fmt_acc, interval, pair_predictions, round_p, verdict


# ---- Template Studio ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StripToken:
    text: str  # as the model sees it (a pseudo token: P0≈word)
    role: str  # field | text | anchor | pseudo | mask | special


@dataclass(frozen=True)
class WordChoice:
    """A word of the template and the template a click on it produces (next role)."""
    word: str
    role: str  # discrete | pseudo | anchor
    source: str


@dataclass(frozen=True)
class LabelTokens:
    cls: str
    word: str
    tokens: str  # the model's pieces, " | "-separated


@dataclass(frozen=True)
class StudioView:
    """What Template Studio shows for one template, model, verbalizer and example."""
    source: str
    error: str = ""  # one line; empty when the template compiles
    error_position: int = 0
    tokens: tuple = ()  # StripToken
    n_tokens: int = 0
    n_pseudo: int = 0
    max_length: int = 0
    truncated: bool = False
    example_error: str = ""  # the example cannot be encoded (e.g. the template is too long)
    warnings: tuple = ()
    words: tuple = ()  # WordChoice
    continuous_source: str = ""
    words_source: str = ""  # start from my words: the discrete words as [P:word]
    random_source: str = ""  # the same positions started at random
    discrete_source: str = ""
    verbalizer: Optional[dict] = None  # the parsed label words (None: open vocabulary or error)
    label_tokens: tuple = ()  # LabelTokens
    verbalizer_warnings: tuple = ()
    verbalizer_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def error_line(self) -> str:
        return f"Template error: {self.error}" if self.error else ""


def studio_view(bb, source: str, fields: list, verbalizer_spec: Optional[dict],
                example: dict) -> StudioView:
    from ptuning_core.lm.encoding import compile_layout, encode, label_token_ids, token_strip
    from ptuning_core.template import (TemplateError, editable_words, from_words, parse, to_continuous,
                           to_discrete, to_random, toggle_word)
    from ptuning_core.lm.verbalizer import Verbalizer, VerbalizerError
    verb, verror = None, ""
    if verbalizer_spec is not None:
        try:
            verb = Verbalizer.parse(verbalizer_spec)
        except VerbalizerError as e:
            verror = str(e)
    try:
        tpl = parse(source, fields=fields)
        layout = compile_layout(tpl, bb.tokenizer, bb.kind)
    except TemplateError as e:
        return StudioView(source=source, error=e.message, error_position=e.position,
                          verbalizer=verb.to_dict() if verb else None, verbalizer_error=verror)
    tokens, truncated, example_error = (), False, ""
    try:
        strip = token_strip(layout, example, bb.tokenizer, bb.max_length)
        tokens = tuple(StripToken(t["token"], t["role"]) for t in strip)
        truncated = encode(layout, example, bb.tokenizer, bb.max_length).truncated
    except TemplateError as e:
        example_error = e.message
    words = tuple(WordChoice(w, role, toggle_word(tpl, i))
                  for i, (w, role) in enumerate(editable_words(tpl)))
    label_tokens, vwarn = (), ()
    if verb is not None:
        try:
            cv = verb.compile(layout, bb.tokenizer)
            label_tokens = tuple(
                LabelTokens(c, w, " | ".join(bb.tokenizer.decode([t]) for t in
                                             label_token_ids(layout, bb.tokenizer, w)))
                for c in verb.classes for w in verb.words[c])
            vwarn = tuple(cv.warnings)
        except VerbalizerError as e:
            verb, verror = None, str(e)
    return StudioView(source=source, tokens=tokens, n_tokens=len(tokens),
                      n_pseudo=layout.n_pseudo, max_length=bb.max_length, truncated=truncated,
                      example_error=example_error, warnings=tuple(layout.warnings), words=words,
                      continuous_source=to_continuous(tpl), discrete_source=to_discrete(tpl),
                      words_source=from_words(tpl), random_source=to_random(from_words(tpl)),
                      verbalizer=verb.to_dict() if verb else None, label_tokens=label_tokens,
                      verbalizer_warnings=vwarn,
                      verbalizer_error=verror)


@dataclass(frozen=True)
class PreviewRow:
    """One zero-shot prediction of the Studio preview."""
    example: str
    gold: str
    prediction: str
    probs: dict = field(default_factory=dict)  # class -> probability (empty: open vocabulary)

    def as_row(self) -> dict:
        return {"example": self.example, "gold": self.gold, "prediction": self.prediction,
                **self.probs}


def preview_rows(predictions: list) -> tuple:
    return tuple(PreviewRow(str(p["text"]), str(p["gold"]), str(p["pred"]),
                            dict(p.get("probs") or {})) for p in predictions)


# ---- Embeddings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Neighbour:
    token: str
    cosine: float


@dataclass(frozen=True)
class PseudoToken:
    name: str  # P0, P1, ...
    init_word: str  # "(random)" when it started from a random vector
    cosine_to_init: float
    nearest: tuple  # Neighbour

    def as_row(self) -> dict:
        return {"pseudo": self.name, "init word": self.init_word,
                "cosine to init": self.cosine_to_init,
                "nearest": ", ".join(f"{x.token!r} ({x.cosine:.2f})" for x in self.nearest)}


@dataclass(frozen=True)
class LabelVector:
    """A learned label token: one class's trainable vector at the label slot."""
    cls: str
    words: tuple  # the class's label words (the vector started at the first one's)
    cosine_to_start: float
    nearest: tuple  # Neighbour, in the LM head's output space

    def as_row(self) -> dict:
        return {"class": self.cls, "label words": ", ".join(self.words),
                "cosine to start": self.cosine_to_start,
                "nearest": ", ".join(f"{x.token!r} ({x.cosine:.2f})" for x in self.nearest)}


@dataclass(frozen=True)
class EmbeddingsView:
    run_id: str
    name: str
    model: str
    n_pseudo: int
    pseudo: tuple  # PseudoToken
    similarity: tuple  # n_pseudo x n_pseudo cosines (tuples)
    discretized: str  # each pseudo token replaced by its nearest word-like token
    steps: tuple  # training steps of the stored trajectory snapshots
    losses: tuple  # the run's training loss per step
    can_retest: bool  # the run names evaluation data
    label_vectors: tuple = ()  # LabelVector, when the run learned its label tokens

    @property
    def labels(self) -> list:
        return [p.name for p in self.pseudo]


@dataclass(frozen=True)
class EmbeddingMap:
    """2-D points of a projection: a vocabulary sample, the init words, the label words and
    the pseudo tokens at each trajectory step (``path[step][pseudo] = (x, y)``)."""
    method: str
    vocab: tuple  # (x, y)
    vocab_labels: tuple
    init: tuple
    init_labels: tuple
    label_words: tuple
    label_labels: tuple
    path: tuple  # per step: per pseudo token (x, y); one step when there is no trajectory


def trajectory_steps(traj: dict) -> list:
    return sorted(int(k.split("_")[1]) for k in traj) if traj else []


def embeddings_view(store, rid: str, bb, k: int, words_only: bool) -> EmbeddingsView:
    from ptuning_core.lm.projections import discretize, drift, nearest_tokens, similarity_matrix
    run, layout, emb, init = load_prompt(store, rid, bb)
    near = nearest_tokens(emb, bb.embeddings, bb.tokenizer, k, words_only)
    dr = drift(emb, init)
    pseudo = tuple(
        PseudoToken(f"P{i}", "(random)" if layout.pseudo_init_ids[i] is None
                    else bb.tokenizer.decode([layout.pseudo_init_ids[i]]), dr[i],
                    tuple(Neighbour(x["token"], x["cosine"]) for x in row))
        for i, row in enumerate(near))
    nearest1 = nearest_tokens(emb, bb.embeddings, bb.tokenizer, 1, words_only=True)
    res = run.get("result") or {}
    cfg = run["config"]
    return EmbeddingsView(
        run_id=rid, name=run["name"], model=cfg.get("model") or "default",
        n_pseudo=layout.n_pseudo, pseudo=pseudo,
        similarity=tuple(tuple(r) for r in similarity_matrix(emb)),
        discretized=discretize(layout, nearest1),
        steps=tuple(trajectory_steps(store.tensors(rid, "trajectory.safetensors"))),
        losses=tuple((res.get("train") or {}).get("losses") or ()),
        can_retest=bool(cfg.get("eval")),
        label_vectors=label_vectors(store, rid, bb, cfg, k, words_only))


def label_vectors(store, rid: str, bb, cfg: dict, k: int, words_only: bool) -> tuple:
    """The nearest vocabulary tokens of each learned label vector (none for label words)."""
    from ptuning_core.lm import label_tokens
    t = store.tensors(rid, label_tokens.FILE)
    if not t or not cfg.get("verbalizer"):
        return ()
    near = label_tokens.nearest(t["vectors"], bb.model, bb.tokenizer, k, words_only)
    return tuple(LabelVector(c, tuple(ws), moved,
                             tuple(Neighbour(x["token"], x["cosine"]) for x in row))
                 for (c, ws), moved, row in zip(cfg["verbalizer"].items(),
                                                label_tokens.cosine_to_init(t), near))


def embedding_map(store, rid: str, bb, method: str, n_vocab: int = 1200) -> EmbeddingMap:
    import torch

    from ptuning_core.lm.encoding import label_token_ids
    from ptuning_core.lm.projections import project_2d
    from ptuning_core.lm.verbalizer import Verbalizer, VerbalizerError
    run, layout, emb, _ = load_prompt(store, rid, bb)
    cfg = run["config"]
    traj = store.tensors(rid, "trajectory.safetensors")
    steps = trajectory_steps(traj)
    E = bb.embeddings.detach().float().cpu()
    g = torch.Generator().manual_seed(0)
    sample = torch.randperm(E.shape[0], generator=g)[:n_vocab]
    label_ids = []
    if cfg.get("verbalizer"):
        try:
            v = Verbalizer.parse(cfg["verbalizer"])
            label_ids = [label_token_ids(layout, bb.tokenizer, w)[0] for c in v.classes
                         for w in v.words[c]]
        except VerbalizerError:
            label_ids = []  # a stored verbalizer this model cannot read: no label words shown
    init_ids = [i for i in layout.pseudo_init_ids if i is not None]
    snaps = [traj[f"step_{s:07d}"] for s in steps] or [emb]
    empty = torch.zeros(0, E.shape[1])
    pts = torch.cat([E[sample], E[init_ids] if init_ids else empty,
                     E[label_ids] if label_ids else empty] + [s.float().cpu() for s in snaps])
    xy = [(float(x), float(y)) for x, y in project_2d(pts.numpy(), method)]
    n_v, n_i, n_l, m = len(sample), len(init_ids), len(label_ids), layout.n_pseudo
    o = n_v + n_i + n_l
    dec = lambda ids: tuple(bb.tokenizer.decode([int(i)]) for i in ids)  # noqa: E731
    return EmbeddingMap(method=method, vocab=tuple(xy[:n_v]), vocab_labels=dec(sample.tolist()),
                        init=tuple(xy[n_v:n_v + n_i]), init_labels=dec(init_ids),
                        label_words=tuple(xy[n_v + n_i:o]), label_labels=dec(label_ids),
                        path=tuple(tuple(xy[o + s * m:o + (s + 1) * m])
                                   for s in range(len(snaps))))


# ---- Compare ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparisonRow:
    prompt: str
    template: str
    accuracy: float
    ci95: str  # formatted: 71.3% [66.0, 76.1]
    n: int
    delta: float  # vs the discrete prompt
    p: Optional[float]  # exact McNemar vs the discrete prompt
    verdict: str

    def as_row(self) -> dict:
        return {"prompt": self.prompt, "template": self.template, "accuracy": self.accuracy,
                "95% CI": self.ci95, "n": self.n, "Δ vs discrete": self.delta,
                "p (McNemar)": self.p, "verdict": self.verdict}


@dataclass(frozen=True)
class PairTest:
    a: str
    b: str
    only_a_right: int
    only_b_right: int
    p: float
    verdict: str

    def as_row(self) -> dict:
        return {"A": self.a, "B": self.b, "A right, B wrong": self.only_a_right,
                "B right, A wrong": self.only_b_right, "p (McNemar)": self.p,
                "verdict": self.verdict}


@dataclass(frozen=True)
class Confusion:
    title: str
    matrix: tuple
    classes: tuple


@dataclass(frozen=True)
class ChangedPrediction:
    text: str
    gold: str
    discrete: str
    continuous: str
    fixed: bool  # right now, wrong with the discrete prompt

    def as_row(self) -> dict:
        return {"text": self.text, "gold": self.gold, "discrete": self.discrete,
                "continuous": self.continuous, "fixed": self.fixed}


@dataclass(frozen=True)
class ComparisonView:
    id: str
    template: str
    owner: str
    created: float
    rows: tuple  # ComparisonRow: the discrete prompt first, then each variant
    pairs: tuple  # PairTest between every two variants
    losses: dict  # variant -> [(step, loss)]
    confusions: tuple  # Confusion: discrete first, then each variant (empty: open vocabulary)
    changed: dict  # variant -> tuple of ChangedPrediction vs the discrete prompt
    missing: int = 0  # variants whose run was deleted

    @property
    def variants(self) -> list:
        return list(self.changed)


def comparison_view(store, cid: str) -> Optional[ComparisonView]:
    """A stored comparison with its runs' results; None when it is not there. A comparison
    whose runs were all deleted has no rows."""
    from ptuning_core.engine.compare import changed_predictions, comparison_rows, pairwise_tests
    comp = store.get(cid)
    if comp is None or comp.get("kind") != "compare":
        return None
    entries = ((comp.get("result") or {}).get("variants")) or []
    variants = [(v["variant"], store.get(v["run_id"])) for v in entries]
    variants = [(n, r["result"]) for n, r in variants if r and r.get("result")
                and (r["result"].get("details") or {}).get("discrete")]
    base = dict(id=cid, template=comp["config"].get("template", ""), owner=comp.get("owner") or "",
                created=comp["created"], missing=len(entries) - len(variants))
    if not variants:
        return ComparisonView(rows=(), pairs=(), losses={}, confusions=(), changed={}, **base)
    rows = tuple(ComparisonRow(r["prompt"], r["template"], r["accuracy"], r["95% CI"], r["n"],
                               r["Δ vs discrete"], r["p (McNemar)"], r["verdict"])
                 for r in comparison_rows(variants))
    pairs = tuple(PairTest(p["A"], p["B"], p["A right, B wrong"], p["B right, A wrong"],
                           p["p (McNemar)"], p["verdict"]) for p in pairwise_tests(variants))
    losses = {n: list(enumerate(res["train"]["losses"], 1)) for n, res in variants
              if res.get("train")}
    confusions = []
    det0 = variants[0][1]["details"]["discrete"]
    if det0.get("confusion"):
        confusions.append(Confusion("discrete", tuple(map(tuple, det0["confusion"])),
                                    tuple(det0["classes"])))
        for n, res in variants:
            d = res["details"].get("continuous") or res["details"]["discrete"]
            confusions.append(Confusion(n, tuple(map(tuple, d["confusion"])), tuple(d["classes"])))
    changed = {}
    for n, res in variants:
        det = res["details"]
        changed[n] = tuple(ChangedPrediction(str(c["text"]), str(c["gold"]), str(c["discrete"]),
                                             str(c["continuous"]), bool(c["fixed"]))
                           for c in changed_predictions(det["discrete"],
                                                        det.get("continuous") or det["discrete"]))
    return ComparisonView(rows=rows, pairs=pairs, losses=losses, confusions=tuple(confusions),
                          changed=changed, **base)


# ---- Few-shot sweeps -------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepCell:
    method: str
    k: int
    seed: int
    accuracy: float
    ci95: tuple
    n_test: int

    def as_row(self) -> dict:
        return {"method": self.method, "k": self.k, "seed": self.seed,
                "accuracy": self.accuracy, "95% CI": fmt_acc(self.accuracy, self.ci95),
                "n_test": self.n_test}


@dataclass(frozen=True)
class SweepPoint:
    method: str
    k: int
    mean: float
    std: float
    n: int  # seeds

    def as_row(self) -> dict:
        # "seeds", not "n": everywhere else n is the number of test examples
        return {"method": self.method, "k": self.k, "mean": self.mean, "std": self.std,
                "seeds": self.n}


@dataclass(frozen=True)
class SweepView:
    id: str  # empty for a sweep still running
    name: str
    status: str
    owner: str
    cells: tuple  # SweepCell
    summary: tuple  # SweepPoint (mean and spread over seeds per method and k)
    done: int = 0  # cells done so far (a running sweep)
    total: int = 0

    @property
    def ks(self) -> list:
        return sorted({c.k for c in self.cells})

    @property
    def methods(self) -> list:
        return sorted({c.method for c in self.cells})


def sweep_view(rows: list, id: str = "", name: str = "", status: str = "", owner: str = "",
               done: int = 0, total: int = 0) -> SweepView:
    from ptuning_core.engine.fewshot import summarize
    cells = tuple(SweepCell(r["method"], int(r["k"]), int(r["seed"]), float(r["accuracy"]),
                            tuple(r.get("ci95") or ()), int(r.get("n_test") or 0)) for r in rows)
    summary = tuple(SweepPoint(s["method"], s["k"], s["mean"], s["std"], s["n"])
                    for s in summarize(rows))
    return SweepView(id, name, status, owner, cells, summary, done or len(cells),
                     total or len(cells))


# ---- Runs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its 95% interval, on ``n`` examples, of one prompt (its template)."""
    accuracy: float
    ci95: tuple
    n: int
    template: str = ""

    @property
    def text(self) -> str:
        return fmt_acc(self.accuracy, self.ci95)


def _accuracy(block) -> Optional[Accuracy]:
    if not block or block.get("accuracy") is None:
        return None
    return Accuracy(float(block["accuracy"]), tuple(interval(block)), int(block.get("n") or 0),
                    str(block.get("template") or ""))


@dataclass(frozen=True)
class TagAccuracy:
    prompt: str  # discrete | continuous
    tag: str
    score: Accuracy


@dataclass(frozen=True)
class RunSummary:
    """A stored run as the Runs, Train, Embeddings and board pages show it (no per-example
    results)."""
    id: str
    name: str
    kind: str
    status: str
    owner: str
    author: str
    shared: bool
    created: float
    error: str
    template: str
    model: str
    train_ref: str
    eval_ref: str
    max_eval: Optional[int]
    label_space: str  # classes | vocab
    discrete: Optional[Accuracy]
    continuous: Optional[Accuracy]
    mcnemar_p: Optional[float]
    verdict: str  # the paired discrete-vs-continuous sentence; empty when not paired
    seed_note: str  # a one-seed run: seeds vary, and where to see the spread; else empty
    steps: Optional[int]  # training steps done
    seconds_per_step: Optional[float]
    trainable_parameters: Optional[int]
    by_tag: tuple  # TagAccuracy
    warnings: tuple
    has_prompt: bool  # a learned prompt is stored

    @property
    def n(self) -> Optional[int]:
        s = self.continuous or self.discrete
        return s.n if s else None

    @property
    def word(self) -> str:
        return "precision@1" if self.label_space == "vocab" else "accuracy"


def run_summary(run: dict, has_prompt: bool = False) -> RunSummary:
    from ptuning_core.stats import result_verdict, seed_note
    cfg, res = run.get("config") or {}, run.get("result") or {}
    tr = res.get("train") or {}
    tags = tuple(TagAccuracy(key, str(tag), _accuracy(v))
                 for key in ("discrete", "continuous")
                 for tag, v in ((res.get("by_tag") or {}).get(key) or {}).items())
    return RunSummary(
        id=run["id"], name=run.get("name") or "", kind=run.get("kind") or "train",
        status=run.get("status") or "", owner=run.get("owner") or "",
        author=run.get("author") or "", shared=bool(run.get("shared")),
        created=float(run.get("created") or 0), error=run.get("error") or "",
        template=str(cfg.get("template") or ""), model=str(cfg.get("model") or "default"),
        train_ref=str(cfg.get("train") or ""), eval_ref=str(cfg.get("eval") or ""),
        max_eval=cfg.get("max_eval"),
        label_space=res.get("label_space") or ("classes" if cfg.get("verbalizer") else "vocab"),
        discrete=_accuracy(res.get("discrete")), continuous=_accuracy(res.get("continuous")),
        mcnemar_p=(res.get("paired") or {}).get("mcnemar_p"),
        verdict=(result_verdict(res) or "") if res.get("discrete") else "",
        seed_note=(seed_note(res, (cfg.get("train_cfg") or {}).get("seed")) or "")
        if res.get("train") else "",
        steps=tr.get("steps"), seconds_per_step=tr.get("seconds_per_step"),
        trainable_parameters=tr.get("trainable_parameters"), by_tag=tags,
        warnings=tuple(res.get("warnings") or ()), has_prompt=has_prompt)


@dataclass(frozen=True)
class RunDetail:
    """One run for its page: the summary, its stored loss and dev-accuracy curves and its
    confusion matrices (discrete, then continuous)."""
    summary: RunSummary
    losses: tuple  # (step, loss)
    dev: tuple  # (step, dev accuracy)
    confusions: tuple  # Confusion


def run_detail(store, rid: str) -> Optional[RunDetail]:
    run = store.get(rid)
    if run is None:
        return None
    steps = store.steps(rid)
    det = (run.get("result") or {}).get("details") or {}
    confusions = tuple(Confusion(key, tuple(map(tuple, det[key]["confusion"])),
                                 tuple(det[key]["classes"]))
                       for key in ("discrete", "continuous")
                       if (det.get(key) or {}).get("confusion"))
    return RunDetail(run_summary(run, (store.run_dir(rid) / "prompt.safetensors").is_file()),
                     tuple((s["step"], s["loss"]) for s in steps if s["loss"] is not None),
                     tuple((s["step"], s["dev"]) for s in steps if s["dev"] is not None),
                     confusions)
