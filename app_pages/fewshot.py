"""Few-shot: accuracy vs k for several methods on paired samples, with the spread."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ptuning_core.api import (DEFAULT_METHODS, DEFAULT_SEEDS, METHODS, SHOWN_ERRORS,
                              USER_ERRORS, SweepSpec, TrainConfig, ranges)
from ui.common import (backbone, link_settings, my_job, number_field, page_link, service,
                       session_id)

st.title("Few-shot sweep")
svc = service()
sid = session_id()
bb = backbone()
if bb is None:
    st.stop()
cls = svc.data.datasets(label_space="classes")
ds = st.session_state.get("dataset", "sentiment")
if ds not in cls:
    st.info(f"Few-shot sweeps run on a bundled classification dataset ({', '.join(cls)}); "
            f"choose one in the sidebar.")
    st.stop()
st.markdown(f"Dataset **{ds}** (from the sidebar): every method sees the same k examples per "
            f"class for each seed, and is tested on the same examples.")
U, max_steps = ranges.FEWSHOT_DEFAULTS, svc.info().max_steps


def _ks(raw):
    try:
        return ",".join(map(str, ranges.parse_list("k", raw, ranges.FEWSHOT_MAX_KS))), None
    except SHOWN_ERRORS as e:
        return None, str(e)


# the link is state: a shared link opens these settings (read with the ranges of config.py)
link_settings("fewshot", {
    "ks": ("fs_ks", _ks), "seeds": ("fs_seeds", "n_seeds"),
    "steps": ("fs_steps", ("steps", max_steps)), "n": ("fs_max_eval", "sweep_max_eval"),
    "methods": ("fs_methods", lambda raw: ranges.parse_names("method", raw, list(METHODS)))})
with st.container(border=True):  # no st.form: every change reaches the link at once
    for key, default in (("ks", ",".join(map(str, U["ks"]))),
                         ("methods", list(DEFAULT_METHODS))):
        if f"w_fs_{key}" not in st.session_state:  # a link, the last visit, else the default
            st.session_state[f"w_fs_{key}"] = st.session_state.get(f"fs_{key}", default)
    ks = st.text_input("k values (per class)", key="w_fs_ks")
    c = st.columns(4)
    n_seeds = number_field(c[0], "Seeds", "fs_seeds", "n_seeds", U["n_seeds"],
                           help="3 in class, 5 for a full study")
    steps = number_field(c[1], "Steps per run", "fs_steps", "steps",
                         min(TrainConfig().steps, max_steps), max_steps)
    max_eval = number_field(c[2], "Test examples", "fs_max_eval", "sweep_max_eval",
                            U["max_eval"])
    methods = st.multiselect("Methods", list(METHODS), key="w_fs_methods",
                             help="lora / full-finetune train a copy of the model through the "
                                  "discrete template (slow on a CPU)")
    st.session_state.update(fs_ks=ks, fs_methods=methods)
    go_btn = st.button("Run sweep", type="primary")
own = {"ks": ks, "seeds": int(n_seeds), "steps": int(steps), "n": int(max_eval),
       "methods": ",".join(methods)}
st.query_params.update(own)
with st.expander("Share these settings"):
    st.code(page_link("fewshot", own), language=None)

if go_btn:
    if not methods:
        st.error("Choose at least one method to run the sweep.")
    else:  # the k values as typed: the door parses them (one line naming the range if bad)
        spec = SweepSpec(dataset=ds, model=st.session_state.get("model", "default"), ks=ks,
                         seeds=list(DEFAULT_SEEDS[:int(n_seeds)]), methods=methods,
                         steps=int(steps), max_eval=int(max_eval))
        try:
            job = svc.runs.sweep(sid, spec, str(bb.device))
            st.session_state["sweep_job"] = job.id
        except SHOWN_ERRORS as e:
            st.error(str(e))


def chart(view) -> go.Figure:
    """Mean ± spread over seeds per method and k (a ``SweepView``), every seed as a dot."""
    fig = go.Figure()
    for m in sorted({s.method for s in view.summary}):
        pts = [s for s in view.summary if s.method == m]
        fig.add_trace(go.Scatter(x=[p.k for p in pts], y=[p.mean for p in pts],
                                 error_y=dict(type="data", array=[p.std for p in pts]),
                                 mode="lines+markers", name=m))
        raw = [c for c in view.cells if c.method == m]
        fig.add_trace(go.Scatter(x=[c.k for c in raw], y=[c.accuracy for c in raw],
                                 mode="markers", marker=dict(size=5, opacity=0.4),
                                 showlegend=False, hovertext=[f"seed {c.seed}" for c in raw]))
    fig.update_xaxes(tickvals=view.ks, ticktext=[str(k) for k in view.ks])
    fig.update_layout(xaxis_type="log", xaxis_title="k (examples per class)",
                      yaxis_title="test accuracy", height=420,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


@st.fragment(run_every=2.0)
def live():
    job = my_job("sweep_job", "sweep")
    jid = job.id if job else None
    if job is None:
        return
    if job.done and st.session_state.get("sweep_seen") == jid:
        if job.error:
            st.error(job.error)
        return  # the finished sweep is drawn once, below, from the store
    live_view = svc.runs.sweep_progress(jid)
    if live_view is not None and live_view.cells:
        st.progress(live_view.done / live_view.total,
                    text=f"{live_view.done}/{live_view.total} runs · {live_view.status}")
        st.plotly_chart(chart(live_view), key=f"live-sweep-{live_view.done}")
    elif not job.done:
        st.progress(0.0, text=f"starting… ({job.status})")
    if job.error:
        st.error(job.error)
    if not job.done and st.button("Stop sweep"):
        svc.runs.stop(jid, sid)
    if job.done and st.session_state.get("sweep_seen") != jid:
        st.session_state["sweep_seen"] = jid
        st.rerun()  # redraw the stored sweeps below


live()
st.subheader("Stored sweeps")
sweeps = {s.id: s for s in svc.library.runs("sweep")}
if sweeps:
    sw = st.selectbox("Open", list(sweeps),
                      format_func=lambda i: f"{sweeps[i].name} · {sweeps[i].status} · {i}")
    try:
        view = svc.library.sweep(sw)
    except USER_ERRORS as e:
        st.error(str(e))
        st.stop()
    if svc.room.can_manage(sid, view.owner) and st.button("Delete this sweep"):
        try:
            svc.library.delete(sw, sid)
            st.rerun()
        except USER_ERRORS as e:
            st.error(str(e))
    if view.cells:
        st.plotly_chart(chart(view), key=f"sweep-{sw}")
        st.dataframe(pd.DataFrame([p.as_row() for p in view.summary]), hide_index=True)
        st.download_button("Download CSV",
                           pd.DataFrame([c.as_row() for c in view.cells]).to_csv(index=False),
                           file_name=f"sweep-{sw}.csv", mime="text/csv")
else:
    st.caption("None yet.")
