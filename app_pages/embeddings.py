"""Embeddings: where the learned pseudo tokens sit among the model's words."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ptuning_core.api import SHOWN_ERRORS, ranges
from ptuning_core.stats import fmt_acc, fmt_pct
from ui.common import heartbeat, no_run_note, pick_run, progress_line, service, session_id

st.title("What did the prompt learn?")
st.info("Nearest words are a **projection, not an explanation**: a continuous prompt that "
        "solves a task can sit near arbitrary or even contradictory words (prompt "
        "waywardness). Use *Discretize and re-test* to see the gap.")
svc = service()
sid = session_id()
runs = [r for r in svc.library.runs("train") if r.has_prompt and
        r.status in ("finished", "stopped", "imported")]
if not runs:
    no_run_note()
    st.info("No finished run with a learned prompt yet.")
    st.stop()
rid = pick_run("Run", runs)
k = st.slider("Nearest tokens per pseudo token", *ranges.bounds("nearest"), ranges.NEAREST)
words_only = st.toggle("Only word-like tokens", value=False)
try:
    view = svc.inspect.embeddings(rid, k, words_only)
except SHOWN_ERRORS as e:
    st.error(str(e))
    st.stop()
st.dataframe(pd.DataFrame([p.as_row() for p in view.pseudo]), hide_index=True)
if view.label_vectors:  # learned label tokens: one vector per class
    st.markdown("**Learned label tokens**: nearest vocabulary tokens of each class's vector "
                "(cosine, in the LM head's output space; a projection, not an explanation)")
    st.dataframe(pd.DataFrame([v.as_row() for v in view.label_vectors]), hide_index=True)

# ---- 2-D map with trajectory ----------------------------------------------------------------
st.subheader("Map of the embedding space")
method = st.radio("Projection", ["pca", "tsne"], horizontal=True)
try:
    with st.spinner("Projecting…"):
        emap = svc.inspect.embedding_map(rid, method)
except SHOWN_ERRORS as e:
    st.error(str(e))
    st.stop()
steps = list(view.steps)
at = len(emap.path) - 1
if steps:
    at = st.select_slider("Training step", options=list(range(len(steps))), value=len(steps) - 1,
                          format_func=lambda i: str(steps[i]))


def xy(points):
    a = np.array(points, dtype=float).reshape(-1, 2)
    return a[:, 0], a[:, 1]


fig = go.Figure()
x, y = xy(emap.vocab)
fig.add_trace(go.Scattergl(x=x, y=y, mode="markers", name="vocabulary",
                           marker=dict(size=4, color="#cbd5e1"), text=list(emap.vocab_labels),
                           hoverinfo="text"))
if emap.init:
    x, y = xy(emap.init)
    fig.add_trace(go.Scatter(x=x, y=y, mode="markers+text", name="init words",
                             marker=dict(size=10, color="#f59e0b"), text=list(emap.init_labels)))
if emap.label_words:
    x, y = xy(emap.label_words)
    fig.add_trace(go.Scatter(x=x, y=y, mode="markers+text", name="label words",
                             marker=dict(size=10, color="#ef4444"), text=list(emap.label_labels)))
path = np.array(emap.path, dtype=float).reshape(len(emap.path), view.n_pseudo, 2)
if len(emap.path) > 1:
    for j in range(view.n_pseudo):
        fig.add_trace(go.Scatter(x=path[:at + 1, j, 0], y=path[:at + 1, j, 1], mode="lines",
                                 line=dict(color="#7c3aed", width=1), showlegend=False,
                                 hoverinfo="skip"))
fig.add_trace(go.Scatter(x=path[at, :, 0], y=path[at, :, 1], mode="markers+text",
                         name="pseudo tokens", marker=dict(size=13, color="#7c3aed",
                                                           symbol="star"),
                         text=view.labels))
fig.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, key="map")
if steps and view.losses:
    lf = go.Figure(go.Scatter(y=list(view.losses), x=list(range(1, len(view.losses) + 1)),
                              mode="lines", name="loss"))
    lf.add_vline(x=steps[min(at, len(steps) - 1)], line_color="#7c3aed")
    lf.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step")
    st.plotly_chart(lf, key="traj-loss")

# ---- discretize and re-test (a job in the queue, never in this script) --------------------
st.subheader("Discretize and re-test")
st.markdown(f"Each pseudo token replaced by its nearest word-like token: `{view.discretized}`")
job_key = f"retest-{rid}"
if view.can_retest and st.button("Evaluate the discretized template"):
    try:
        st.session_state[job_key] = svc.inspect.retest(sid, rid).id
    except SHOWN_ERRORS as e:
        st.error(str(e))


def show_retest(res) -> None:
    c = st.columns(2)
    if res.continuous_accuracy is not None:
        c[0].metric("continuous prompt", fmt_pct(res.continuous_accuracy))
        c[0].caption(f"95% CI {fmt_acc(res.continuous_accuracy, res.continuous_ci95)} · "
                     f"n={res.continuous_n}")
    delta = None if res.continuous_accuracy is None else \
        f"{100 * (res.accuracy - res.continuous_accuracy):+.1f} points"
    c[1].metric("nearest-word prompt", fmt_pct(res.accuracy), delta=delta)
    c[1].caption(f"95% CI {fmt_acc(res.accuracy, res.ci95)} · n={res.n}")
    if res.verdict:
        st.info(res.verdict)


@st.fragment(run_every=1.0)
def retest_panel():
    heartbeat()
    jid = st.session_state.get(job_key)
    job = svc.runs.view(jid) if jid else svc.inspect.retest_job(rid)  # after a refresh: the run's
    jid = job.id if job is not None else jid
    if job is not None and not job.done:
        if job.status == "queued":
            st.info(f"Re-test waiting in the queue: position {job.position}.")
        else:
            st.progress(*progress_line(job.progress(), job.stopping))
        return
    if job is not None and job.error:
        st.error(f"The re-test failed: {job.error}")
    res = (svc.inspect.retest_result(jid) if jid else None) or svc.inspect.last_retest(rid)
    if res is not None and res.template == view.discretized:
        show_retest(res)


retest_panel()

st.subheader("Similarity between pseudo tokens")
st.plotly_chart(go.Figure(go.Heatmap(z=[list(r) for r in view.similarity], x=view.labels,
                                     y=view.labels, zmin=-1, zmax=1, colorscale="RdBu",
                                     reversescale=True)).update_layout(
    height=360, margin=dict(l=10, r=10, t=10, b=10)), key="sim")
