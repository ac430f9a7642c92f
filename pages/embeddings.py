"""Embeddings: where the learned pseudo tokens sit among the model's words."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from ptuning_core import data as D
from ptuning_core import label_tokens
from ptuning_core.encoding import compile_layout, label_token_ids
from ptuning_core.evaluate import evaluate
from ptuning_core.experiment import USER_ERRORS
from ptuning_core.model import PromptModel
from ptuning_core.projections import (discretize, drift, nearest_tokens, project_2d,
                                      similarity_matrix)
from ptuning_core.stats import fmt_acc, fmt_pct, interval, pair_predictions, verdict
from ptuning_core.template import TemplateError
from ptuning_core.verbalizer import Verbalizer, VerbalizerError
from ui.common import backbone, pick_run, service

st.title("What did the prompt learn?")
st.info("Nearest words are a **projection, not an explanation**: a continuous prompt that "
        "solves a task can sit near arbitrary or even contradictory words (prompt "
        "waywardness). Use *Discretize and re-test* to see the gap.")
svc = service()
store = svc.store
runs = [r for r in store.list() if r["kind"] == "train" and r["status"] in
        ("finished", "stopped", "imported")
        and (store.run_dir(r["id"]) / "prompt.safetensors").is_file()]
if not runs:
    st.info("No finished run with a learned prompt yet.")
    st.stop()
rid = pick_run("Run", runs)
run = store.get(rid)
cfg = run["config"]
model = cfg.get("model") or "default"
bb = backbone(model)
if bb is None:
    st.stop()
t = store.tensors(rid)
emb, init = t["embeddings"], t.get("init", t["embeddings"])
try:
    layout = compile_layout(cfg["template"], bb.tokenizer, bb.kind)
except TemplateError as e:
    st.error(str(e))
    st.stop()
if emb.shape != (layout.n_pseudo, bb.hidden_size):
    st.error("This run's embeddings do not fit the current model.")
    st.stop()
k = st.slider("Nearest tokens per pseudo token", 1, 15, 5)
words_only = st.toggle("Only word-like tokens", value=False)
near = nearest_tokens(emb, bb.embeddings, bb.tokenizer, k, words_only)
dr = drift(emb, init)
rows = []
for i, row in enumerate(near):
    iid = layout.pseudo_init_ids[i]
    rows.append({"pseudo": f"P{i}", "init word": "(random)" if iid is None
                 else bb.tokenizer.decode([iid]), "cosine to init": dr[i],
                 "nearest": ", ".join(f"{x['token']!r} ({x['cosine']:.2f})" for x in row)})
st.dataframe(pd.DataFrame(rows), hide_index=True)
labels_t = store.tensors(rid, label_tokens.FILE)
if labels_t and cfg.get("verbalizer"):  # learned label tokens: one vector per class
    st.markdown("**Learned label tokens** — nearest vocabulary tokens of each class's vector "
                "(cosine, in the LM head's output space; a projection, not an explanation)")
    lnear = label_tokens.nearest(labels_t["vectors"], bb.model, bb.tokenizer, k, words_only)
    st.dataframe(pd.DataFrame([
        {"class": c, "label words": ", ".join(ws), "cosine to start": moved,
         "nearest": ", ".join(f"{x['token']!r} ({x['cosine']:.2f})" for x in row)}
        for (c, ws), moved, row in zip(cfg["verbalizer"].items(),
                                       label_tokens.cosine_to_init(labels_t), lnear)]),
        hide_index=True)

# ---- 2-D map with trajectory ----------------------------------------------------------------
st.subheader("Map of the embedding space")
traj = store.tensors(rid, "trajectory.safetensors")
steps = sorted(int(k.split("_")[1]) for k in traj) if traj else []
method = st.radio("Projection", ["pca", "tsne"], horizontal=True)


@st.cache_data(show_spinner="Projecting…", max_entries=8)
def layout_points(run_id: str, method: str, n_vocab: int = 1200):
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
            pass
    init_ids = [i for i in layout.pseudo_init_ids if i is not None]
    snaps = [traj[f"step_{s:07d}"] for s in steps] or [emb]
    pts = torch.cat([E[sample], E[init_ids] if init_ids else torch.zeros(0, E.shape[1]),
                     E[label_ids] if label_ids else torch.zeros(0, E.shape[1])] +
                    [s.float() for s in snaps])
    xy = project_2d(pts.numpy(), method)
    return sample.tolist(), init_ids, label_ids, xy


sample, init_ids, label_ids, xy = layout_points(rid, method)
n_v, n_i, n_l, m = len(sample), len(init_ids), len(label_ids), layout.n_pseudo
at = 0
if steps:
    at = st.select_slider("Training step", options=list(range(len(steps))), value=len(steps) - 1,
                          format_func=lambda i: str(steps[i]))
fig = go.Figure()
fig.add_trace(go.Scattergl(x=xy[:n_v, 0], y=xy[:n_v, 1], mode="markers", name="vocabulary",
                           marker=dict(size=4, color="#cbd5e1"),
                           text=[bb.tokenizer.decode([i]) for i in sample], hoverinfo="text"))
if n_i:
    fig.add_trace(go.Scatter(x=xy[n_v:n_v + n_i, 0], y=xy[n_v:n_v + n_i, 1], mode="markers+text",
                             name="init words", marker=dict(size=10, color="#f59e0b"),
                             text=[bb.tokenizer.decode([i]) for i in init_ids]))
if n_l:
    o = n_v + n_i
    fig.add_trace(go.Scatter(x=xy[o:o + n_l, 0], y=xy[o:o + n_l, 1], mode="markers+text",
                             name="label words", marker=dict(size=10, color="#ef4444"),
                             text=[bb.tokenizer.decode([i]) for i in label_ids]))
o = n_v + n_i + n_l
if steps:
    path = xy[o:].reshape(len(steps), m, 2)
    for j in range(m):
        fig.add_trace(go.Scatter(x=path[:at + 1, j, 0], y=path[:at + 1, j, 1], mode="lines",
                                 line=dict(color="#7c3aed", width=1), showlegend=False,
                                 hoverinfo="skip"))
    cur = path[at]
else:
    cur = xy[o:o + m]
fig.add_trace(go.Scatter(x=cur[:, 0], y=cur[:, 1], mode="markers+text", name="pseudo tokens",
                         marker=dict(size=13, color="#7c3aed", symbol="star"),
                         text=[f"P{i}" for i in range(m)]))
fig.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, key="map")
losses = (run.get("result") or {}).get("train", {}) or {}
if steps and losses.get("losses"):
    lf = go.Figure(go.Scatter(y=losses["losses"], x=list(range(1, len(losses["losses"]) + 1)),
                              mode="lines", name="loss"))
    lf.add_vline(x=steps[at], line_color="#7c3aed")
    lf.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step")
    st.plotly_chart(lf, key="traj-loss")

# ---- discretize and re-test -----------------------------------------------------------------
st.subheader("Discretize and re-test")
nearest1 = nearest_tokens(emb, bb.embeddings, bb.tokenizer, 1, words_only=True)
dtpl = discretize(layout, nearest1)
st.markdown(f"Each pseudo token replaced by its nearest word-like token: `{dtpl}`")
if st.button("Evaluate the discretized template") and cfg.get("eval"):
    try:
        ds = D.load_ref(cfg["eval"])
        rows_eval = ds.rows[: int(cfg.get("max_eval") or 200)]
        verb = Verbalizer.parse(cfg["verbalizer"]) if cfg.get("verbalizer") else None
        with st.spinner("Evaluating…"):
            res = evaluate(PromptModel(bb, dtpl, verb, "none"), rows_eval,
                           cfg.get("label_field") or "label")
        cont = (run.get("result") or {}).get("continuous") or {}
        c = st.columns(2)
        if cont:
            c[0].metric("continuous prompt", fmt_pct(cont["accuracy"]))
            c[0].caption(f"95% CI {fmt_acc(cont['accuracy'], interval(cont))} · n={cont['n']}")
        c[1].metric("nearest-word prompt", fmt_pct(res["accuracy"]),
                    delta=f"{100 * (res['accuracy'] - cont.get('accuracy', 0)):+.1f} points")
        c[1].caption(f"95% CI {fmt_acc(res['accuracy'], res['ci95'])} · n={res['n']}")
        cpreds = (((run.get("result") or {}).get("details") or {}).get("continuous") or {})
        paired = pair_predictions(cpreds.get("predictions") or [], res["predictions"])
        if paired is not None and cont:
            st.info(verdict("the continuous prompt", cont["accuracy"], "the nearest-word prompt",
                            res["accuracy"], paired))
    except USER_ERRORS as e:
        st.error(str(e))

st.subheader("Similarity between pseudo tokens")
sim = np.array(similarity_matrix(emb))
labels = [f"P{i}" for i in range(m)]
st.plotly_chart(go.Figure(go.Heatmap(z=sim, x=labels, y=labels, zmin=-1, zmax=1,
                                     colorscale="RdBu", reversescale=True)).update_layout(
    height=360, margin=dict(l=10, r=10, t=10, b=10)), key="sim")
