"""Train: a run form with sensible defaults, your live run (after a refresh too), the queue."""
import streamlit as st

from ptuning_core.api import SHOWN_ERRORS, RunSpec, TrainConfig, ranges
from ui.common import (base_url, job_panel, my_job, page_setup, queue_panel, share_query,
                       verbalizer_for)

svc, sid, bb, ctx, template = page_setup("Train a continuous prompt")
st.markdown(f"**Template:** `{template}`  ·  **data:** {ctx['name']}  ·  edit it in "
            f"Template Studio" + ("  ·  **learned label tokens**" if st.session_state.get(
                "label_tokens") == "learned" else ""))
max_steps = svc.info().max_steps
if st.session_state.get("template_error"):
    st.warning(f"The template being edited in Template Studio has an error "
               f"({st.session_state['template_error']}); this page uses the last template that "
               f"worked.")
D = TrainConfig()  # the one place that holds the defaults (chosen by bench/sweep_defaults.py)
U = ranges.UI_DEFAULTS  # the page's other starting values; ranges: ptuning_core/config.py
for msg in st.session_state.pop("_link_msgs", []):
    st.warning(msg)


def start(key: str, name: str, default, hi=None):
    """A widget's starting value from the session (a link, the last Train click), moved into
    the widget's range: a number_input never gets a value it would raise on."""
    v = st.session_state.get(key, default)
    try:
        return ranges.clamp(name, float(v), hi)
    except (TypeError, ValueError):
        return ranges.clamp(name, float(default), hi)


def lo_hi(name: str, hi=None):
    lo, top = ranges.bounds(name)
    return lo, top if hi is None else min(top, hi)

with st.container(border=True):  # no st.form: every change reaches the link at once
    c = st.columns(4)
    steps = c[0].number_input("Steps", *lo_hi("steps", max_steps),
                              start("steps", "steps", D.steps, max_steps), key="f_steps")
    lr = c[1].number_input("Learning rate", *map(float, lo_hi("lr")), start("lr", "lr", D.lr),
                           format="%.6f", key="f_lr")
    batch = c[2].number_input("Batch size", *lo_hi("batch_size"), D.batch_size, key="f_batch")
    encs = list(ranges.ENCODERS)
    enc = c[3].selectbox("Encoder", encs, index=encs.index(st.session_state.get("encoder",
                                                                                D.encoder))
                         if st.session_state.get("encoder", D.encoder) in encs else 0,
                         help="lstm: the paper's BiLSTM+MLP · mlp · none: prompt tuning",
                         key="f_enc")
    c = st.columns(4)
    seed = c[0].number_input("Seed", *lo_hi("seed"), start("seed", "seed", D.seed), key="f_seed")
    shots = c[1].number_input("k-shot (per class; 0 = all)", *lo_hi("shots"),
                              start("shots", "shots", U["shots"]), key="f_shots")
    aux = c[2].number_input("Auxiliary loss weight", *map(float, lo_hi("aux_weight")),
                            float(D.aux_weight), key="f_aux",
                            help="0 = off; the method notes' refinement: also reconstruct the "
                                 "text, keeping the prompt close to natural language")
    devices = ["auto", "cpu"] + (["cuda"] if bb.device.type == "cuda" else [])
    device = c[3].selectbox("Device", devices, key="f_device")
    c = st.columns(2)
    eval_every = c[0].number_input("Dev evaluation every N steps (0 = off)",
                                   *lo_hi("eval_every", max_steps),
                                   ranges.clamp("eval_every", D.eval_every, max_steps),
                                   key="f_eval_every")
    max_eval = c[1].number_input("Evaluate on at most N test examples", *lo_hi("max_eval"),
                                 U["max_eval"], key="f_max_eval")
    name = st.text_input("Run name (optional)", key="f_name")
    precs = list(ranges.PRECISIONS)
    precision = st.selectbox("Precision", precs, index=precs.index(D.precision), key="f_precision",
                             help="the frozen model's arithmetic: auto = bf16 where the hardware "
                                  "does it natively (faster), else fp32; the prompt encoder "
                                  "always trains in fp32")
    model_name = st.session_state.get("model", "default")
    same = [r for r in svc.library.runs("train") if r.status in ("finished", "stopped")
            and r.template == template and r.model == model_name]
    resume = st.selectbox("Continue from run (optional)", [None] + [r.id for r in same],
                          format_func=lambda i: "— start fresh —" if i is None else
                          next(f"{r.name} · {i}" for r in same if r.id == i),
                          key="f_resume", help="same template and model; pick its encoder")
    go = st.button("Train", type="primary")
    st.caption(f"Steps {lo_hi('steps', max_steps)[0]}–{lo_hi('steps', max_steps)[1]} · learning "
               f"rate {ranges.bounds('lr')[0]:g}–{ranges.bounds('lr')[1]:g} · seed "
               f"0–{ranges.bounds('seed')[1]} · k-shot 0–{ranges.bounds('shots')[1]}: a number "
               f"typed outside its range is not taken (the field keeps its last value)")

# the link is state: the address bar (and "Share these settings") carries the form as it is now
st.session_state.update(steps=int(steps), lr=float(lr), encoder=enc, seed=int(seed),
                        shots=int(shots))
st.query_params.update({"steps": int(steps), "lr": float(lr), "enc": enc, "seed": int(seed),
                        "k": int(shots)})

if go:
    spec = RunSpec(template=template, train=ctx["train_ref"], eval=ctx["eval_ref"],
                   dev=None, verbalizer=verbalizer_for(ctx),
                   model=st.session_state.get("model", "default"), label_field=ctx["label_field"],
                   shots=int(shots) or None, device=device, name=name,
                   max_eval=int(max_eval), resume=resume,
                   train_cfg=TrainConfig(steps=int(steps), lr=float(lr), batch_size=int(batch),
                                         seed=int(seed), encoder=enc, aux_weight=float(aux),
                                         eval_every=int(eval_every),
                                         label_tokens=st.session_state.get("label_tokens",
                                                                           D.label_tokens),
                                         precision=precision))
    try:
        job = svc.runs.train(sid, spec)
        st.session_state["active_job"] = job.id
        st.session_state.setdefault("my_jobs", []).append(job.id)
    except SHOWN_ERRORS as e:
        st.error(str(e))

job = my_job("active_job", "train")  # a new tab or a refresh: your latest run
if job is not None:
    st.subheader("Current run")
    job_panel(job.id)
    if job.run_id:
        st.caption(f"Run id `{job.run_id}` · link: {base_url()}/runs?run={job.run_id}")

st.subheader("Queue")
queue_panel()

with st.expander("Share these settings"):
    st.code(f"{base_url()}/train?{share_query(template=template)}", language=None)
