"""Compare: the discrete template vs continuous variants trained on the same split."""
import pandas as pd
import streamlit as st

from ptuning_core.backbone import ModelLoadError
from ptuning_core.compare import VARIANTS, changed_predictions, comparison_rows, pairwise_tests
from ptuning_core.experiment import USER_ERRORS, RunSpec
from ptuning_core.jobs import QueueFull
from ptuning_core.train import TrainConfig
from ui.common import confusion_figure, loss_figure, page_setup, progress_line, verbalizer_for

svc, sid, bb, ctx, template = page_setup("Discrete vs continuous")
st.markdown(f"Template `{template}` on **{ctx['name']}**: every variant trains on the same "
            f"k-shot split and is tested on the same examples.")
with st.form("compare"):
    names = st.multiselect("Variants", list(VARIANTS), default=["P-tuning (lstm)",
                                                                 "prompt tuning (none)"])
    c = st.columns(4)
    steps = c[0].number_input("Steps", 1, svc.settings.max_steps, min(TrainConfig().steps, svc.settings.max_steps))
    shots = c[1].number_input("k per class", 1, 256, 16)
    seed = c[2].number_input("Seed", 0, 10**6, 13)
    max_eval = c[3].number_input("Test examples", 10, 5000, 200)
    go = st.form_submit_button("Compare", type="primary")

if go:
    spec = RunSpec(template=template, train=ctx["train_ref"], eval=ctx["eval_ref"],
                   verbalizer=verbalizer_for(ctx),
                   model=st.session_state.get("model", "default"), label_field=ctx["label_field"],
                   shots=int(shots), max_eval=int(max_eval), name="compare",
                   train_cfg=TrainConfig(steps=int(steps), seed=int(seed)))
    try:
        job = svc.submit_comparison(sid, spec, names, str(bb.device))
        st.session_state["compare_job"] = job.id
    except (ModelLoadError, QueueFull, *USER_ERRORS) as e:
        st.error(str(e))


@st.fragment(run_every=1.0)
def progress():
    jid = st.session_state.get("compare_job")
    if jid is None or svc.queue.get(jid) is None:  # a new tab or a refresh: your latest one
        latest = svc.current_job(sid, "compare")
        jid = latest.id if latest else None
    job = svc.queue.get(jid) if jid else None
    if job is None or job.done:
        if job is not None and job.error:
            st.error(job.error)
        if job is not None and job.done and st.session_state.get("compare_seen") != jid:
            st.session_state["compare_seen"] = jid
            st.rerun()  # show the finished comparison below
        return
    snap = job.snapshot()
    var = [e for e in snap["events"] if e["type"] == "variant"]
    p = snap["progress"]
    text = f"{var[-1]['name']} ({var[-1]['index'] + 1}/{var[-1]['total']})" if var else "starting"
    frac, line = progress_line(p, job.stop.is_set())
    st.progress(frac, text=f"{text} · {line}")
    if st.button("Stop comparison"):
        svc.stop_job(jid, sid)


progress()

comps = svc.store.list(kind="compare")
if not comps:
    st.info("No comparison yet.")
    st.stop()
cid = st.selectbox("Comparison", [c["id"] for c in comps],
                   format_func=lambda i: next(f"{c['config'].get('template')} · "
                                              f"{pd.to_datetime(c['created'], unit='s'):%H:%M:%S}"
                                              for c in comps if c["id"] == i))
comp = svc.store.get(cid)
if svc.can_manage(sid, comp["owner"]) and st.button("Delete this comparison",
                                                     help="its runs stay on the Runs page"):
    try:
        svc.delete_run(cid, sid)
        st.rerun()
    except USER_ERRORS as e:
        st.error(str(e))
variants = [(v["variant"], svc.store.get(v["run_id"])) for v in comp["result"]["variants"]]
variants = [(n, r) for n, r in variants if r and r.get("result")]
if not variants:
    st.warning("The runs of this comparison were deleted.")
    st.stop()
first = variants[0][1]["result"]
results = [(n, r["result"]) for n, r in variants]
st.dataframe(pd.DataFrame(comparison_rows(results)), hide_index=True, column_config={
    "accuracy": st.column_config.NumberColumn(format="%.3f"),
    "Δ vs discrete": st.column_config.NumberColumn(format="%+.3f")})
st.caption("95% Wilson intervals; p: exact McNemar test on the same test examples. A difference "
           "with p ≥ 0.05 is not significant: it may be noise.")
if len(results) > 1:
    with st.expander("Every pair of variants"):
        st.dataframe(pd.DataFrame(pairwise_tests(results)), hide_index=True)
st.plotly_chart(loss_figure({n: list(enumerate(r["result"]["train"]["losses"], 1))
                             for n, r in variants if r["result"].get("train")},
                            title="Loss curves"), key="cmp-loss")
det0 = first.get("details", {}).get("discrete")
if det0 and det0.get("confusion"):
    cols = st.columns(len(variants) + 1)
    cols[0].plotly_chart(confusion_figure(det0["confusion"], det0["classes"], "discrete"),
                         key="cm-d")
    for col, (n, r) in zip(cols[1:], variants):
        d = r["result"]["details"].get("continuous") or r["result"]["details"]["discrete"]
        col.plotly_chart(confusion_figure(d["confusion"], d["classes"], n), key=f"cm-{n}")
pick = st.selectbox("Changed predictions: discrete vs", [n for n, _ in variants])
r = dict(variants)[pick]
det = r["result"]["details"]
ch = changed_predictions(det["discrete"], det.get("continuous") or det["discrete"])
st.caption(f"{len(ch)} examples changed; {sum(c['fixed'] for c in ch)} fixed by the continuous "
           f"prompt")
if ch:
    st.dataframe(pd.DataFrame(ch), hide_index=True)
