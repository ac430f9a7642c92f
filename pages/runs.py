"""Runs: every stored run; open, rename, delete, share, export and import prompts."""
import tempfile
from pathlib import Path

import streamlit as st

from ptuning_core.api import USER_ERRORS, PromptFileError
from ui.common import (backbone, confusion_figure, job_panel, loss_figure, pick_run,
                       result_summary, runs_frame, service, session_id)
from ui.use_prompt import use_prompt_panel

st.title("Runs")
svc = service()
sid = session_id()
store = svc.store
runs = [r for r in store.list() if r["kind"] == "train"]
if not runs:
    st.info("No runs yet: train one on the Train page.")
df = runs_frame(runs)
if not df.empty:
    owners = svc.classroom.labels(r["owner"] or "" for r in runs)
    df.insert(2, "owner", [owners[r["owner"] or ""] + (" (you)" if r["owner"] == sid else "")
                           for r in runs])
    st.dataframe(df, hide_index=True, column_config={
        "discrete": st.column_config.NumberColumn(format="%.3f"),
        "continuous": st.column_config.NumberColumn(format="%.3f")})

if runs:
    rid = pick_run("Open a run", runs)
    run = store.get(rid)
    if run is None:
        st.warning("That run was deleted.")
        st.stop()
    st.subheader(run["name"])
    cfg, res = run["config"], run["result"] or {}
    st.markdown(f"`{cfg.get('template')}` · model **{cfg.get('model')}** · status "
                f"**{run['status']}**" + (f" · error: {run['error']}" if run.get("error") else ""))
    job = svc.job_for_run(rid)
    if job is not None and not job.done:
        job_panel(job.id)
    steps = store.steps(rid)
    if steps:
        fig = loss_figure({"loss": [(s["step"], s["loss"]) for s in steps if s["loss"] is not None]},
                          {"run": [(s["step"], s["dev"]) for s in steps if s["dev"] is not None]})
        st.plotly_chart(fig, key=f"loss-{rid}")
    if res.get("discrete"):
        result_summary(res)
        if res.get("train"):
            st.caption(f"{res['train']['trainable_parameters']:,} trainable parameters")
        det = res.get("details", {})
        if det.get("discrete", {}).get("confusion"):
            cols = st.columns(2)
            for col, key in zip(cols, ("discrete", "continuous")):
                if det.get(key):
                    col.plotly_chart(confusion_figure(det[key]["confusion"], det[key]["classes"],
                                                      key), key=f"cm-{key}-{rid}")
    for w in res.get("warnings", []):
        st.warning(w)
    use_prompt_panel(run)  # Try it · Evaluate on… (the learned prompt, without its encoder)

    def export_button(col):
        if (store.run_dir(rid) / "prompt.safetensors").is_file():
            try:
                col.download_button("Export prompt", svc.export_prompt(rid),
                                    file_name=f"prompt-{rid}.safetensors",
                                    mime="application/octet-stream")
            except PromptFileError as e:
                st.error(str(e))

    if not svc.can_manage(sid, run["owner"]):
        owner = svc.classroom.labels([run["owner"] or ""])[run["owner"] or ""]
        st.caption(f"This run belongs to {owner}: you can look at it and export its prompt; "
                   f"only they or the teacher can change it.")
        export_button(st)
    else:
        with st.expander("Manage this run"):
            new = st.text_input("Name", value=run["name"], key=f"name-{rid}")
            c = st.columns(4)
            try:
                if c[0].button("Rename"):
                    svc.rename_run(rid, new, sid)
                    st.rerun()
                shared = c[1].toggle("Shared on the class board", value=run["shared"],
                                     key=f"sh-{rid}")
                if shared != run["shared"]:
                    svc.share_run(rid, shared, sid)
                    st.rerun()
                if c[2].button("Delete", type="secondary"):
                    st.session_state["confirm_delete"] = rid
                if st.session_state.get("confirm_delete") == rid:
                    st.warning("Delete this run and its files for good?")
                    if st.button("Yes, delete"):
                        svc.delete_run(rid, sid)
                        st.session_state.pop("confirm_delete", None)
                        st.rerun()
            except USER_ERRORS as e:
                st.error(str(e))
            export_button(c[3])

st.subheader("Import a prompt")
up = st.file_uploader("A .safetensors prompt exported by P-Tuning Studio", type=["safetensors"],
                      key="import_file")
if up is not None and st.button("Import"):
    bb = backbone()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "import.safetensors"
        p.write_bytes(up.getvalue())
        try:
            new = svc.import_prompt(sid, p, backbone=bb,
                                    model=st.session_state.get("model", "default"))
            st.success(f"Imported as run {new}")
        except PromptFileError as e:
            st.error(str(e))
