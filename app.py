"""P-Tuning Studio: a router. Pages are thin; everything else lives in ptuning_core."""
import streamlit as st

from ui.common import restore_from_link, session_id, sidebar

st.set_page_config(page_title="P-Tuning Studio", page_icon=":material/tune:", layout="wide")
restore_from_link()
session_id()
nav = st.navigation({
    "Build": [st.Page("pages/studio.py", title="Template Studio", icon=":material/edit:", default=True),
              st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
              st.Page("pages/runs.py", title="Runs", icon=":material/history:")],
    "Understand": [st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
                   st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
                   st.Page("pages/fewshot.py", title="Few-shot", icon=":material/show_chart:")],
    "Class": [st.Page("pages/board.py", title="Class board", icon=":material/leaderboard:")],
})
sidebar()
nav.run()
