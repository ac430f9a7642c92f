"""P-Tuning Studio: a router. Pages are thin; everything else lives in ptuning_core."""
import streamlit as st

from ui.common import restore_from_link, session_id, sidebar

st.set_page_config(page_title="P-Tuning Studio", page_icon="🎛️", layout="wide")
restore_from_link()
session_id()
nav = st.navigation({
    "Build": [st.Page("pages/studio.py", title="Template Studio", icon="✏️", default=True),
              st.Page("pages/train.py", title="Train", icon="🏋️"),
              st.Page("pages/runs.py", title="Runs", icon="🗂️")],
    "Understand": [st.Page("pages/compare.py", title="Compare", icon="⚖️"),
                   st.Page("pages/embeddings.py", title="Embeddings", icon="🧭"),
                   st.Page("pages/fewshot.py", title="Few-shot", icon="📈")],
    "Class": [st.Page("pages/board.py", title="Class board", icon="🏆")],
})
sidebar()
nav.run()
