"""Runs page: use a run's learned prompt without its encoder. *Try it*: one input per template
field, the class probabilities as a bar chart. *Evaluate on…*: a bundled split or an hf:
reference, queued as a background job; accuracy with its 95% interval when done."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ptuning_core.api import (SHOWN_ERRORS, USER_ERRORS, DataError, Evaluation, ModelLoadError,
                              NoLearnedPrompt, Prediction, ranges)
from ptuning_core.stats import fmt_acc, fmt_pct, result_verdict
from ui.common import heartbeat, progress_line, service, session_id

HF_CHOICE = "hf:"
OWN_CHOICE = "own"
MAX_EXAMPLES = ranges.bounds("max_eval")[1]  # the one range of test examples (config.py)


def use_prompt_panel(run) -> None:
    """*Try it* and *Evaluate on…* for a run (``RunSummary``) that learned a prompt (nothing
    otherwise)."""
    rid = run.id
    try:
        lp = service().library.learned_prompt(rid)
    except NoLearnedPrompt:
        return
    except USER_ERRORS as e:
        st.error(str(e))
        return
    try_it(rid, lp.fields)
    evaluate_on(rid, run.eval_ref or None, run.max_eval)


# ---- Try it --------------------------------------------------------------------------------
def prediction_figure(pred: Prediction) -> go.Figure:
    colors = ["#7c3aed" if label == pred.top else "#c4b5fd" for label in pred.labels]
    fig = go.Figure(go.Bar(x=list(pred.labels), y=list(pred.probs), marker_color=colors,
                           text=[fmt_pct(p) for p in pred.probs], textposition="outside"))
    title = "five most probable tokens" if pred.label_space == "vocab" else "class probabilities"
    fig.update_layout(title=title, yaxis=dict(title="probability", range=[0, 1.1]), height=300,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def try_it(rid: str, fields: list) -> None:
    with st.expander("Try it"):
        st.caption("Your own text through the learned prompt: only the stored vectors are used, "
                   "the encoder that produced them is not needed any more.")
        values = {f: st.text_input(f"{{{f}}}", key=f"try-{rid}-{f}",
                                   placeholder="e.g. the film was a delight") for f in fields}
        if not all(v.strip() for v in values.values()):
            st.caption("Type a text" + (" in every field" if len(fields) > 1 else "") +
                       " to see what the prompt predicts.")
            return
        try:
            pred = service().library.predict(rid, values)
        except (ModelLoadError, *USER_ERRORS) as e:
            st.error(str(e))
            return
        st.markdown(f"Prediction: **{pred.top}** ({fmt_pct(max(pred.probs))})")
        st.plotly_chart(prediction_figure(pred), key=f"try-chart-{rid}")


# ---- Evaluate on… --------------------------------------------------------------------------
def data_choices(own: str | None) -> list:
    """Every bundled split, the run's own evaluation data when it is something else (an
    upload), and a free hf: reference."""
    svc = service()
    splits = [f"{n}:{s}" for n in svc.data.datasets() for s in svc.data.dataset_info(n)["files"]]
    extra = [OWN_CHOICE] if own and own not in splits and not own.startswith("hf:") else []
    return extra + splits + [HF_CHOICE]


def evaluate_on(rid: str, own: str | None, max_eval: int | None) -> None:
    svc = service()
    with st.expander("Evaluate on…"):
        st.caption("The learned prompt and its discrete template on other data (or again on "
                   "the run's own: same data and number of examples give the same accuracy). "
                   "It runs in the queue; the result appears here.")
        options = data_choices(own)
        default = OWN_CHOICE if OWN_CHOICE in options else \
            HF_CHOICE if (own or "").startswith("hf:") else own if own in options else options[0]
        c = st.columns([3, 1])
        choice = c[0].selectbox("Data", options, index=options.index(default),
                                key=f"ev-data-{rid}", format_func=lambda o: {
                                    OWN_CHOICE: "this run's evaluation data",
                                    HF_CHOICE: "a Hugging Face dataset (hf:NAME:SPLIT)"}.get(o, o))
        n = c[1].number_input("First N examples", ranges.bounds("max_eval")[0], MAX_EXAMPLES,
                              min(int(max_eval or ranges.MAX_EVAL), MAX_EXAMPLES),
                              key=f"ev-n-{rid}")
        ref = own if choice == OWN_CHOICE else choice
        if choice == HF_CHOICE:
            ref = st.text_input("Hugging Face reference", key=f"ev-hf-{rid}",
                                value=own if (own or "").startswith("hf:") else "",
                                placeholder="hf:glue/sst2:validation").strip()
        if st.button("Evaluate", key=f"ev-go-{rid}"):
            try:
                if not ref:
                    raise DataError("type a reference of the form hf:NAME[/CONFIG]:SPLIT")
                job = svc.runs.evaluate(session_id(), rid, ref, int(n))
                st.session_state[f"ev-job-{rid}"] = job.id
            except SHOWN_ERRORS as e:
                st.error(str(e))
        _job_progress(rid)
        _results(svc.library.evaluations(rid))


def _job_progress(rid: str) -> None:
    jid = st.session_state.get(f"ev-job-{rid}")
    if not jid:
        return

    @st.fragment(run_every=1.0)
    def poll():
        heartbeat()
        svc = service()
        job = svc.runs.view(jid)
        if job is None:
            return
        if job.done:
            if job.error:
                st.error(f"The evaluation failed: {job.error}")
            elif st.session_state.get(f"ev-seen-{rid}") != jid:
                st.session_state[f"ev-seen-{rid}"] = jid
                st.rerun()  # show the result below
            return
        if job.status == "queued":
            st.info(f"Evaluation waiting in the queue: position {job.position}.")
        else:
            st.progress(*progress_line(job.progress()))
    poll()


def _results(evs: list) -> None:
    if not evs:
        return
    last: Evaluation = evs[0]
    word = "precision@1" if last.label_space == "vocab" else "accuracy"
    st.markdown(f"**Last evaluation:** `{last.eval_ref}`, n={last.continuous.n}")
    cols = st.columns(2)
    for col, name, s in ((cols[0], "learned prompt", last.continuous),
                         (cols[1], "discrete template", last.discrete)):
        col.metric(f"{name} {word}", fmt_pct(s.accuracy), help=s.template)
        col.caption(f"95% CI {fmt_acc(s.accuracy, s.ci95).split(' ', 1)[1]} · n={s.n}")
    verdict = result_verdict(last.to_dict())
    if verdict:
        st.info(verdict)
    rows = [{"data": e.eval_ref, "n": e.continuous.n,
             f"learned {word}": e.continuous.accuracy,
             "learned 95% CI": fmt_acc(e.continuous.accuracy, e.continuous.ci95),
             f"discrete {word}": e.discrete.accuracy,
             "discrete 95% CI": fmt_acc(e.discrete.accuracy, e.discrete.ci95),
             "p (McNemar)": e.paired.mcnemar_p if e.paired else None} for e in evs]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
