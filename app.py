"""P-Tuning Studio: a router. Pages are thin; everything else lives in ptuning_core."""
import streamlit as st

from ui.classroom import classroom_sidebar, remember, start_session
from ui.common import backend_banner, restore_from_link, sidebar

st.set_page_config(page_title="P-Tuning Studio", page_icon=":material/tune:", layout="wide")
start_session()  # identity (signed cookie), what the server kept for it, the class's pin
try:
    restore_from_link()
    backend_banner()
    nav = st.navigation({
        "Build": [st.Page("app_pages/studio.py", title="Template Studio", icon=":material/edit:",
                          default=True),
                  st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
                  st.Page("app_pages/runs.py", title="Runs", icon=":material/history:")],
        "Understand": [st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
                       st.Page("app_pages/embeddings.py", title="Embeddings",
                               icon=":material/scatter_plot:"),
                       st.Page("app_pages/fewshot.py", title="Few-shot",
                               icon=":material/show_chart:"),
                       st.Page("app_pages/experiments.py", title="Experiments",
                               icon=":material/science:")],
        "Class": [st.Page("app_pages/board.py", title="Class board", icon=":material/leaderboard:")],
    })
    sidebar()
    classroom_sidebar()
    remember()  # what this run's request brought (typed, chosen, uploaded): kept before the page
    nav.run()
finally:  # also when a run is cut short (a rerun, st.stop, the tab closing)
    remember()  # what changed (name, template, dataset, upload) is kept with the identity
