"""Runs: every stored run; open, rename, delete, share, export and import prompts."""
import streamlit as st

from ptuning_core.api import SHOWN_ERRORS, USER_ERRORS, PromptFileError
from ui.common import (confusion_figure, job_panel, loss_figure, no_run_note, pick_run,
                       result_summary, runs_frame, service, session_id)
from ui.use_prompt import use_prompt_panel

st.title("Runs")
svc = service()
sid = session_id()


def act(change) -> None:
    """Run a change to a run (a widget's callback); a refusal is shown on the next run."""
    try:
        change()
    except USER_ERRORS as e:
        st.session_state["_manage_error"] = str(e)


runs = svc.library.runs("train")
if not runs:
    no_run_note()
    st.info("No runs yet: train one on the Train page.")
df = runs_frame(runs)
if not df.empty:
    owners = svc.library.owner_names(r.owner for r in runs)
    df.insert(2, "owner", [owners[r.owner] + (" (you)" if r.owner == sid else "")
                           for r in runs])
    st.dataframe(df, hide_index=True, column_config={
        "discrete": st.column_config.NumberColumn(format="%.3f"),
        "continuous": st.column_config.NumberColumn(format="%.3f")})

if runs:
    rid = pick_run("Open a run", runs)
    detail = svc.library.run_detail(rid)
    if detail is None:
        st.warning("That run was deleted.")
        st.stop()
    run = detail.summary
    st.subheader(run.name)
    st.markdown(f"`{run.template}` · model **{run.model}** · status **{run.status}**" +
                (f" · error: {run.error}" if run.error else ""))
    job = svc.runs.for_run(rid)
    if job is not None and not job.done:
        job_panel(job.id)
    if detail.losses or detail.dev:
        st.plotly_chart(loss_figure({"loss": list(detail.losses)}, {"run": list(detail.dev)}),
                        key=f"loss-{rid}")
    if run.discrete:
        result_summary(run)
        if run.trainable_parameters is not None:
            st.caption(f"{run.trainable_parameters:,} trainable parameters")
        if detail.confusions and detail.confusions[0].title == "discrete":
            cols = st.columns(2)
            for col, cm in zip(cols, detail.confusions):
                col.plotly_chart(confusion_figure([list(r) for r in cm.matrix], list(cm.classes),
                                                  cm.title), key=f"cm-{cm.title}-{rid}")
    for w in run.warnings:
        st.warning(w)
    use_prompt_panel(run)  # Try it · Evaluate on… (the learned prompt, without its encoder)

    def export_button(col):
        if run.has_prompt:
            try:
                col.download_button("Export prompt", svc.library.export_prompt(rid),
                                    file_name=f"prompt-{rid}.safetensors",
                                    mime="application/octet-stream")
            except PromptFileError as e:
                st.error(str(e))

    if not svc.room.can_manage(sid, run.owner):
        owner = svc.library.owner_names([run.owner])[run.owner]
        st.caption(f"This run belongs to {owner}: you can look at it and export its prompt; "
                   f"only they or the teacher can change it.")
        export_button(st)
    else:
        with st.expander("Manage this run"):
            # the changes act in callbacks: they land even when the next click leaves the page
            # before this page has run again
            err = st.session_state.pop("_manage_error", None)
            if err:
                st.error(err)
            st.text_input("Name", value=run.name, key=f"name-{rid}")
            c = st.columns(4)
            c[0].button("Rename", on_click=act, args=(lambda: svc.library.rename(
                rid, st.session_state[f"name-{rid}"], sid),))
            c[1].toggle("Shared on the class board", value=run.shared, key=f"sh-{rid}",
                        on_change=act, args=(lambda: svc.library.share(
                            rid, st.session_state[f"sh-{rid}"], sid),))
            if c[2].button("Delete", type="secondary"):
                st.session_state["confirm_delete"] = rid
            if st.session_state.get("confirm_delete") == rid:
                st.warning("Delete this run and its files for good?")
                st.button("Yes, delete", on_click=act, args=(lambda: (
                    svc.library.delete(rid, sid), st.session_state.pop("confirm_delete", None)),))
            export_button(c[3])

st.subheader("Import a prompt")
up = st.file_uploader("A .safetensors prompt exported by P-Tuning Studio", type=["safetensors"],
                      key="import_file")
if up is not None and st.button("Import"):
    try:
        new = svc.library.import_prompt(sid, up.getvalue(),
                                        model=st.session_state.get("model", "default"),
                                        filename=up.name)
        st.success(f"Imported as run {new}")
    except SHOWN_ERRORS as e:
        st.error(str(e))
