"""Experiments: the method's claims (E1-E6), one click each; the numbers with their intervals
and paired tests, a chart, and one sentence computed from the numbers."""
import importlib.util

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ptuning_core.api import (EXPERIMENT_KIND, EXPERIMENTS, SHOWN_ERRORS, USER_ERRORS,
                              ExperimentRequest, get_experiment)
from ptuning_core.stats import fmt_acc
from ui.common import backbone, my_job, progress_line, service, session_id

st.title("Experiments: the method's claims")
svc, sid = service(), session_id()
bb = backbone()
if bb is None:
    st.stop()
st.markdown("Each claim of the method notes as an experiment you can rerun: the same k-shot "
            "samples and test examples for every arm, several seeds, every accuracy with its "
            "95% interval, an exact McNemar test between arms, and a sentence **computed from "
            "this run's numbers** — it says *not shown here* as readily as *shown*.")
c = st.columns([2, 2, 2])
preset = c[0].radio("Preset", ["small", "full"], horizontal=True,
                    help="small: a few minutes on 2 CPU cores (k=16 or 4 and 16, 2 seeds, "
                         "30 steps, 100 test examples); full: for a GPU (5 seeds, 150 steps, "
                         "the whole test split)")
seeds_txt = c[1].text_input("Seeds (optional)", placeholder="preset's, e.g. 13,21",
                            key="exp_seeds")
ks_txt = c[2].text_input("k per class (optional)", placeholder="preset's, e.g. 4,16",
                         key="exp_ks")


for exp in EXPERIMENTS.values():
    with st.container(border=True):
        left, right = st.columns([5, 1])
        p = exp.presets[preset]
        left.markdown(f"**{exp.id} · {exp.title}** — {exp.claim}  \n"
                      f"<small>{exp.dataset} · {' vs '.join(exp.arm_names())} · k = "
                      f"{', '.join(map(str, p.ks))} · {len(p.seeds)} seeds · {p.steps} steps"
                      f"</small>", unsafe_allow_html=True)
        if right.button(f"Run {exp.id}", key=f"run-{exp.id}", type="primary"):
            try:
                req = ExperimentRequest(exp.id, preset=preset,
                                          model=st.session_state.get("model", "default"),
                                          seeds=seeds_txt, ks=ks_txt)  # parsed by the door
                job = svc.runs.experiment(sid, req)
                st.session_state["experiment_job"] = job.id
            except SHOWN_ERRORS as e:
                st.error(str(e))


@st.fragment(run_every=1.0)
def progress():
    job = my_job("experiment_job", EXPERIMENT_KIND)
    jid = job.id if job else None
    if job is None or job.done:
        if job is not None and job.error:
            st.error(job.error)
        if job is not None and job.done and st.session_state.get("experiment_seen") != jid:
            st.session_state["experiment_seen"] = jid
            if job.run_id:
                st.session_state["experiment_pick"] = job.run_id
            st.rerun()  # show the finished experiment below
        return
    frac, line = progress_line(job.progress(), job.stopping)
    st.progress(frac, text=f"{job.activity or job.label} · {line}")
    if svc.room.can_manage(sid, job.owner_id) and st.button("Stop experiment",
                                                      help="the finished runs are kept"):
        svc.runs.stop(jid, sid)


progress()

stored = svc.library.experiments()
if not stored:
    st.info("No experiment yet: run one above.")
    st.stop()
ids = [e["id"] for e in stored]
if st.session_state.get("experiment_pick") not in ids:
    st.session_state["experiment_pick"] = ids[0]
rid = st.selectbox("Stored experiment", ids, key="experiment_pick",
                   format_func=lambda i: next(f"{e['name']} · {e['status']} · "
                                              f"{pd.to_datetime(e['created'], unit='s'):%H:%M:%S}"
                                              for e in stored if e["id"] == i))
res = svc.library.experiment(rid)
exp = get_experiment(res.experiment)
st.subheader(f"{exp.id} · {exp.title}")
st.caption(f"Claim: {exp.claim}  ·  status {res.status}  ·  settings: "
           f"{', '.join(f'{k}={v}' for k, v in res.settings.items())}")
st.info(res.sentence)


def figure(summary: list, cells: list) -> go.Figure:
    ks = sorted({r["k"] for r in summary})
    fig = go.Figure()
    for arm in exp.arm_names():
        rows = [r for r in summary if r["arm"] == arm]
        x = [str(r["k"]) for r in rows] if len(ks) > 1 else [arm] * len(rows)
        fig.add_trace(go.Scatter(
            x=x, y=[r["accuracy"] for r in rows], name=arm,
            mode="lines+markers" if len(ks) > 1 else "markers",
            marker=dict(size=12), error_y=dict(type="data", symmetric=False,
                                               array=[r["ci95"][1] - r["accuracy"] for r in rows],
                                               arrayminus=[r["accuracy"] - r["ci95"][0]
                                                           for r in rows])))
        seeds = [c for c in cells if c["arm"] == arm]
        fig.add_trace(go.Scatter(
            x=[str(c["k"]) for c in seeds] if len(ks) > 1 else [arm] * len(seeds),
            y=[c["accuracy"] for c in seeds], mode="markers", showlegend=False,
            marker=dict(size=6, opacity=0.45), hovertext=[f"seed {c['seed']}" for c in seeds]))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10),
                      title=f"{exp.id}: accuracy with 95% intervals (small dots: one seed each)",
                      xaxis_title="k (examples per class)" if len(ks) > 1 else "",
                      yaxis_title="test accuracy")
    return fig


fig = figure(res.summary, res.cells)
st.plotly_chart(fig, key=f"exp-{rid}")
table = [{"arm": r["arm"], "k": r["k"], "accuracy (95% CI)": fmt_acc(r["accuracy"], r["ci95"]),
          "n (all seeds)": r["n"], "seeds": r["seeds"],
          "per seed": f"{r['seed_mean']:.3f} ± {r['seed_std']:.3f}",
          **({"steps to 90% of final dev acc.": r["steps_to_90"]} if "steps_to_90" in r else {})}
         for r in res.summary]
st.dataframe(pd.DataFrame(table), hide_index=True)
st.caption("Accuracy pooled over the seeds (each seed its own k-shot sample, the same test "
           "examples) with a 95% Wilson interval; the sentence's p-values are exact McNemar "
           "tests on the paired predictions.")

c = st.columns(3)
c[0].download_button("Download CSV", res.csv(), file_name=f"{exp.id}-{rid}.csv", mime="text/csv")
if importlib.util.find_spec("kaleido") is not None:
    try:
        c[1].download_button("Download PNG", fig.to_image(format="png", width=1000, height=450),
                             file_name=f"{exp.id}-{rid}.png", mime="image/png")
    except Exception as e:  # kaleido present but its browser is not: say so, keep the page
        c[1].caption(f"PNG export failed ({str(e)[:80]}); use the chart's camera button.")
else:
    c[1].caption("PNG: the kaleido package is not installed here, so use the camera button "
                 "in the chart's toolbar (top right of the chart).")
if svc.room.can_manage(sid, res.owner):
    shared = c[2].toggle("Shared on the class board", value=res.shared, key=f"share-{rid}")
    if shared != res.shared:
        try:
            svc.library.share(rid, shared, sid)
            st.toast("On the class board." if shared else "Taken off the class board.")
        except USER_ERRORS as e:
            st.error(str(e))
    if st.button("Delete this experiment"):
        try:
            svc.library.delete(rid, sid)
            st.session_state.pop("experiment_pick", None)
            st.rerun()
        except USER_ERRORS as e:
            st.error(str(e))
