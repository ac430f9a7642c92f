"""Few-shot: accuracy vs k for several methods on paired samples, with the spread."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ptuning_core import data as D
from ptuning_core.backbone import ModelLoadError
from ptuning_core.experiment import USER_ERRORS
from ptuning_core.fewshot import DEFAULT_METHODS, METHODS, SweepSpec, summarize
from ptuning_core.jobs import QueueFull
from ptuning_core.train import TrainConfig
from ui.common import backbone, service, session_id

st.title("Few-shot sweep")
svc = service()
sid = session_id()
bb = backbone()
if bb is None:
    st.stop()
cls = [d for d in D.list_datasets() if D.dataset_info(d)["label_space"] == "classes"]
ds = st.session_state.get("dataset", "sentiment")
if ds not in cls:
    st.info(f"Few-shot sweeps run on a bundled classification dataset ({', '.join(cls)}); "
            f"choose one in the sidebar.")
    st.stop()
st.markdown(f"Dataset **{ds}** (from the sidebar): every method sees the same k examples per "
            f"class for each seed, and is tested on the same examples.")
with st.form("sweep"):
    ks = st.text_input("k values (per class)", "2,4,8,16,32")
    c = st.columns(4)
    n_seeds = c[0].number_input("Seeds", 1, 5, 3, help="3 in class, 5 for a full study")
    steps = c[1].number_input("Steps per run", 1, svc.settings.max_steps,
                              min(TrainConfig().steps, svc.settings.max_steps))
    max_eval = c[2].number_input("Test examples", 10, 2000, 100)
    methods = st.multiselect("Methods", list(METHODS), default=list(DEFAULT_METHODS),
                             help="lora / full-finetune train a copy of the model through the "
                                  "discrete template (slow on a CPU)")
    go_btn = st.form_submit_button("Run sweep", type="primary")

if go_btn:
    try:
        k_list = sorted({int(x) for x in ks.replace(" ", "").split(",") if x})
        if not k_list or min(k_list) < 1 or max(k_list) > 256:
            raise ValueError("k values must be whole numbers from 1 to 256")
    except ValueError as e:
        st.error(f"k values: {e}")
        k_list = None
    if k_list and methods:
        spec = SweepSpec(dataset=ds, model=st.session_state.get("model", "default"), ks=k_list,
                         seeds=list(D.DEFAULT_SEEDS[:int(n_seeds)]), methods=methods,
                         steps=int(steps), max_eval=int(max_eval))
        try:
            job = svc.submit_sweep(sid, spec, str(bb.device))
            st.session_state["sweep_job"] = job.id
        except (ModelLoadError, QueueFull, *USER_ERRORS) as e:
            st.error(str(e))


def chart(rows):
    summ = summarize(rows)
    fig = go.Figure()
    for m in sorted({s["method"] for s in summ}):
        pts = [s for s in summ if s["method"] == m]
        fig.add_trace(go.Scatter(x=[p["k"] for p in pts], y=[p["mean"] for p in pts],
                                 error_y=dict(type="data", array=[p["std"] for p in pts]),
                                 mode="lines+markers", name=m))
        raw = [r for r in rows if r["method"] == m]
        fig.add_trace(go.Scatter(x=[r["k"] for r in raw], y=[r["accuracy"] for r in raw],
                                 mode="markers", marker=dict(size=5, opacity=0.4),
                                 showlegend=False, hovertext=[f"seed {r['seed']}" for r in raw]))
    ks = sorted({r["k"] for r in rows})
    fig.update_xaxes(tickvals=ks, ticktext=[str(k) for k in ks])
    fig.update_layout(xaxis_type="log", xaxis_title="k (examples per class)",
                      yaxis_title="test accuracy", height=420,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig, summ


@st.fragment(run_every=2.0)
def live():
    jid = st.session_state.get("sweep_job")
    if jid is None or svc.queue.get(jid) is None:  # a new tab or a refresh: your latest one
        latest = svc.current_job(sid, "sweep")
        jid = latest.id if latest else None
    job = svc.queue.get(jid) if jid else None
    if job is None:
        return
    if job.done and st.session_state.get("sweep_seen") == jid:
        if job.error:
            st.error(job.error)
        return  # the finished sweep is drawn once, below, from the store
    snap = job.snapshot()
    cells = [e for e in snap["events"] if e.get("type") == "cell"]
    if cells:
        st.progress(cells[-1]["done"] / cells[-1]["total"],
                    text=f"{cells[-1]['done']}/{cells[-1]['total']} runs · {snap['status']}")
        fig, _ = chart(cells)
        st.plotly_chart(fig, key=f"live-sweep-{len(cells)}")
    elif not job.done:
        st.progress(0.0, text=f"starting… ({snap['status']})")
    if job.error:
        st.error(job.error)
    if not job.done and st.button("Stop sweep"):
        svc.stop_job(jid, sid)
    if job.done and st.session_state.get("sweep_seen") != jid:
        st.session_state["sweep_seen"] = jid
        st.rerun()  # redraw the stored sweeps below


live()
st.subheader("Stored sweeps")
sweeps = svc.store.list(kind="sweep")
if sweeps:
    sw = st.selectbox("Open", [s["id"] for s in sweeps],
                      format_func=lambda i: next(f"{s['name']} · {s['status']} · {i}"
                                                 for s in sweeps if s["id"] == i))
    entry = svc.store.get(sw)
    res = entry["result"] or {}
    if svc.can_manage(sid, entry["owner"]) and st.button("Delete this sweep"):
        try:
            svc.delete_run(sw, sid)
            st.rerun()
        except USER_ERRORS as e:
            st.error(str(e))
    if res.get("rows"):
        fig, summ = chart(res["rows"])
        st.plotly_chart(fig, key=f"sweep-{sw}")
        df = pd.DataFrame(summ)
        st.dataframe(df, hide_index=True)
        st.download_button("Download CSV", pd.DataFrame(res["rows"]).to_csv(index=False),
                           file_name=f"sweep-{sw}.csv", mime="text/csv")
else:
    st.caption("None yet.")
