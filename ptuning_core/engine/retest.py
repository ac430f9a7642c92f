"""A stored run's learned prompt read back (the one loader), and its re-test: the nearest-word
(discretized) template evaluated on the run's own examples, paired with the learned prompt.
Engine work (a Ray worker runs it too: raybackend), so below the views and the door."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ptuning_core.stats import interval, pair_predictions, round_p, verdict


def load_prompt(store, rid: str, bb):
    """(run, layout, learned embeddings, initial embeddings) of a stored run on a backbone;
    PromptFileError (one line) when it has none or it does not fit the model."""
    from ptuning_core.lm.encoding import compile_layout
    from ptuning_core.engine.portable import PromptFileError
    run = store.get(rid)
    if run is None:
        raise PromptFileError(f"no run {rid}")
    t = store.tensors(rid)
    if "embeddings" not in t:
        raise PromptFileError("this run has no learned prompt")
    emb, init = t["embeddings"], t.get("init", t["embeddings"])
    layout = compile_layout(run["config"]["template"], bb.tokenizer, bb.kind)
    if tuple(emb.shape) != (layout.n_pseudo, bb.hidden_size):
        raise PromptFileError("this run's embeddings do not fit the current model")
    return run, layout, emb, init



@dataclass(frozen=True)
class RetestResult:
    """The discretized template (nearest words) evaluated again, paired with the run's learned
    prompt on the same examples."""
    run_id: str
    template: str
    accuracy: float
    ci95: tuple
    n: int
    continuous_accuracy: Optional[float] = None
    continuous_ci95: Optional[tuple] = None
    continuous_n: Optional[int] = None
    only_continuous_right: Optional[int] = None
    only_discretized_right: Optional[int] = None
    mcnemar_p: Optional[float] = None
    verdict: str = ""  # one sentence from the numbers; empty when not paired


def retest_rows(cfg: dict) -> list:
    """The examples a run's re-test evaluates: its own evaluation data, up to its max_eval."""
    from ptuning_core.data import bundled as D
    from ptuning_core.config import MAX_EVAL
    return D.load_ref(cfg["eval"]).rows[: int(cfg.get("max_eval") or MAX_EVAL)]


def retest(store, rid: str, bb, callback=None, rows: Optional[list] = None) -> RetestResult:
    """Evaluate the discretized template of a run on its own evaluation data (up to its
    ``max_eval``), with an exact McNemar test against its continuous predictions. ``rows``:
    that data read beforehand (``retest_rows``; a Ray worker gets what the driver read)."""
    from ptuning_core.engine.evaluate import evaluate, phase_progress
    from ptuning_core.lm.model import PromptModel
    from ptuning_core.lm.projections import discretize, nearest_tokens
    from ptuning_core.config import ConfigError
    from ptuning_core.lm.verbalizer import Verbalizer
    run, layout, emb, _ = load_prompt(store, rid, bb)
    cfg = run["config"]
    if not cfg.get("eval"):
        raise ConfigError("this run names no evaluation data to re-test on")
    dtpl = discretize(layout, nearest_tokens(emb, bb.embeddings, bb.tokenizer, 1,
                                             words_only=True))
    rows = retest_rows(cfg) if rows is None else rows
    verb = Verbalizer.parse(cfg["verbalizer"]) if cfg.get("verbalizer") else None
    res = evaluate(PromptModel(bb, dtpl, verb, "none"), rows, cfg.get("label_field") or "label",
                   progress=phase_progress(callback, "re-test") if callback else None)
    out = dict(run_id=rid, template=dtpl, accuracy=res["accuracy"], ci95=tuple(res["ci95"]),
               n=res["n"])
    result = run.get("result") or {}
    cont = result.get("continuous")
    if cont:
        out.update(continuous_accuracy=cont["accuracy"], continuous_ci95=tuple(interval(cont)),
                   continuous_n=cont["n"])
        cpreds = ((result.get("details") or {}).get("continuous") or {}).get("predictions")
        p = pair_predictions(cpreds or [], res["predictions"])
        if p is not None:
            out.update(only_continuous_right=p.only_a_right, only_discretized_right=p.only_b_right,
                       mcnemar_p=round_p(p.mcnemar_p),
                       verdict=verdict("the continuous prompt", cont["accuracy"],
                                       "the nearest-word prompt", res["accuracy"], p))
    return RetestResult(**out)
