"""Class board: runs their authors chose to share, best first. Made to be projected."""
import pandas as pd
import streamlit as st

from ptuning_core.stats import fmt_acc, interval
from ui.common import service


@st.fragment(run_every=5.0)
def board():
    runs = service().store.list(shared_only=True)
    rows = []
    for r in runs:
        res = r.get("result") or {}
        c, d = res.get("continuous") or {}, res.get("discrete") or {}
        ci = interval(c) if c else None
        rows.append({"author": r.get("author") or "anonymous", "name": r["name"],
                     "template": r["config"].get("template"),
                     "data": str(r["config"].get("train", "")).split(":")[0],
                     "accuracy": c.get("accuracy"),
                     "95% CI": fmt_acc(c["accuracy"], ci) if c else None,
                     "n": c.get("n"), "_rank": ci[0] if ci else -1.0,
                     "discrete": d.get("accuracy"), "run": r["id"]})
    if not rows:
        st.info("Nothing shared yet: on the Runs page, switch on 'Shared on the class board'.")
        return
    df = pd.DataFrame(rows).sort_values("_rank", ascending=False).drop(columns="_rank")
    st.caption("Ranked by the lower end of each 95% interval, so a run tested on 20 examples "
               "does not outrank one tested on 200 by luck.")
    st.dataframe(df, hide_index=True, column_config={
        "accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.3f"),
        "discrete": st.column_config.NumberColumn(format="%.3f")})


st.title("Class board")
board()
