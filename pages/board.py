"""Class board: runs their authors chose to share, best first. Made to be projected."""
import pandas as pd
import streamlit as st

from ui.common import service


@st.fragment(run_every=5.0)
def board():
    runs = service().store.list(shared_only=True)
    rows = []
    for r in runs:
        res = r.get("result") or {}
        acc = (res.get("continuous") or {}).get("accuracy")
        rows.append({"author": r.get("author") or "anonymous",
                     "template": r["config"].get("template"),
                     "data": str(r["config"].get("train", "")).split(":")[0],
                     "accuracy": acc,
                     "discrete": (res.get("discrete") or {}).get("accuracy"),
                     "run": r["id"]})
    if not rows:
        st.info("Nothing shared yet: on the Runs page, switch on 'Shared on the class board'.")
        return
    df = pd.DataFrame(rows).sort_values("accuracy", ascending=False, na_position="last")
    st.dataframe(df, hide_index=True, column_config={
        "accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.3f"),
        "discrete": st.column_config.NumberColumn(format="%.3f")})


st.title("Class board")
board()
