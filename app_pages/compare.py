"""Compare: the discrete template vs continuous variants trained on the same split."""
import pandas as pd
import streamlit as st

from ptuning_core.api import SHOWN_ERRORS, USER_ERRORS, VARIANTS, RunSpec, TrainConfig, ranges
from ui.common import (confusion_figure, link_settings, loss_figure, my_job, number_field,
                       page_link, page_setup, progress_line, verbalizer_for)

svc, sid, bb, ctx, template = page_setup("Discrete vs continuous")
st.markdown(f"Template `{template}` on **{ctx['name']}**: every variant trains on the same "
            f"k-shot split and is tested on the same examples.")
D, U, max_steps = TrainConfig(), ranges.COMPARE_DEFAULTS, svc.info().max_steps
# the link is state: a shared link opens these settings (read with the ranges of config.py)
link_settings("compare", {
    "v": ("cmp_variants", lambda raw: ranges.parse_names("variant", raw, list(VARIANTS))),
    "steps": ("cmp_steps", ("steps", max_steps)), "k": ("cmp_k", "k"),
    "seed": ("cmp_seed", "seed"), "n": ("cmp_max_eval", "compare_max_eval")})
with st.container(border=True):  # no st.form: every change reaches the link at once
    if "w_cmp_variants" not in st.session_state:
        st.session_state["w_cmp_variants"] = st.session_state.get(
            "cmp_variants", ["P-tuning (lstm)", "prompt tuning (none)"])
    names = st.multiselect("Variants", list(VARIANTS), key="w_cmp_variants")
    st.session_state["cmp_variants"] = names
    c = st.columns(4)
    steps = number_field(c[0], "Steps", "cmp_steps", "steps", min(D.steps, max_steps), max_steps)
    shots = number_field(c[1], "k per class", "cmp_k", "k", U["shots"])
    seed = number_field(c[2], "Seed", "cmp_seed", "seed", D.seed)
    max_eval = number_field(c[3], "Test examples", "cmp_max_eval", "compare_max_eval",
                            U["max_eval"])
    go = st.button("Compare", type="primary")
own = {"v": ",".join(names), "steps": int(steps), "k": int(shots), "seed": int(seed),
       "n": int(max_eval)}
st.query_params.update(own)
with st.expander("Share these settings"):
    st.code(page_link("compare", own, template), language=None)

if go:
    spec = RunSpec(template=template, train=ctx["train_ref"], eval=ctx["eval_ref"],
                   verbalizer=verbalizer_for(ctx),
                   model=st.session_state.get("model", "default"), label_field=ctx["label_field"],
                   shots=int(shots), max_eval=int(max_eval), name="compare",
                   train_cfg=TrainConfig(steps=int(steps), seed=int(seed)))
    try:
        job = svc.runs.compare(sid, spec, names, str(bb.device))
        st.session_state["compare_job"] = job.id
    except SHOWN_ERRORS as e:
        st.error(str(e))


@st.fragment(run_every=1.0)
def progress():
    job = my_job("compare_job", "compare")
    jid = job.id if job else None
    if job is None or job.done:
        if job is not None and job.error:
            st.error(job.error)
        if job is not None and job.done and st.session_state.get("compare_seen") != jid:
            st.session_state["compare_seen"] = jid
            st.rerun()  # show the finished comparison below
        return
    frac, line = progress_line(job.progress(), job.stopping)
    st.progress(frac, text=f"{job.activity or 'starting'} · {line}")
    if st.button("Stop comparison"):
        svc.runs.stop(jid, sid)


progress()

comps = {c.id: c for c in svc.library.runs("compare")}
if not comps:
    st.info("No comparison yet.")
    st.stop()
cid = st.selectbox("Comparison", list(comps),
                   format_func=lambda i: f"{comps[i].template} · "
                                         f"{pd.to_datetime(comps[i].created, unit='s'):%H:%M:%S}")
try:
    view = svc.library.comparison(cid)
except USER_ERRORS as e:
    st.error(str(e))
    st.stop()
if svc.room.can_manage(sid, view.owner) and st.button("Delete this comparison",
                                                 help="its runs stay on the Runs page"):
    try:
        svc.library.delete(cid, sid)
        st.rerun()
    except USER_ERRORS as e:
        st.error(str(e))
if not view.rows:
    st.warning("The runs of this comparison were deleted.")
    st.stop()
st.dataframe(pd.DataFrame([r.as_row() for r in view.rows]), hide_index=True, column_config={
    "accuracy": st.column_config.NumberColumn(format="%.3f"),
    "Δ vs discrete": st.column_config.NumberColumn(format="%+.3f")})
st.caption("95% Wilson intervals; p: exact McNemar test on the same test examples. A difference "
           "with p ≥ 0.05 is not significant: it may be noise.")
if view.missing:
    st.caption(f"{view.missing} of its runs were deleted.")
if view.pairs:
    with st.expander("Every pair of variants"):
        st.dataframe(pd.DataFrame([p.as_row() for p in view.pairs]), hide_index=True)
st.plotly_chart(loss_figure(view.losses, title="Loss curves"), key="cmp-loss")
if view.confusions:
    cols = st.columns(len(view.confusions))
    for col, cm in zip(cols, view.confusions):
        col.plotly_chart(confusion_figure([list(r) for r in cm.matrix], list(cm.classes),
                                          cm.title), key=f"cm-{cm.title}")
pick = st.selectbox("Changed predictions: discrete vs", view.variants)
ch = view.changed[pick]
st.caption(f"{len(ch)} examples changed; {sum(c.fixed for c in ch)} fixed by the continuous "
           f"prompt")
if ch:
    st.dataframe(pd.DataFrame([c.as_row() for c in ch]), hide_index=True)
