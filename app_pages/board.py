"""Class board: runs their authors chose to share, best first. Made to be projected. A run's
owner, and the teacher, can take it off the board."""
import pandas as pd
import streamlit as st

from ptuning_core.api import EXPERIMENT_KIND, USER_ERRORS
from ui.common import service, session_id


@st.fragment(run_every=5.0)
def board():
    svc, who = service(), st.session_state.get("sid", "")
    table = st.container()  # drawn after the removal control below has acted
    removal(svc, who)
    rows = [{"author": b.author, "name": b.name, "template": b.template, "data": b.data,
             "accuracy": b.accuracy, "95% CI": b.ci95_text, "n": b.n, "discrete": b.discrete,
             "run": b.run} for b in svc.library.board()]  # best first (the door's ranking)
    with table:
        if not rows:
            st.info("Nothing shared yet: on the Runs page, switch on 'Shared on the class "
                    "board'.")
            return
        df = pd.DataFrame(rows)
        st.caption("Ranked by the lower end of each 95% interval, so a run tested on 20 "
                   "examples does not outrank one tested on 200 by luck.")
        st.dataframe(df, hide_index=True, column_config={
            "accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                        format="%.3f"),
            "discrete": st.column_config.NumberColumn(format="%.3f")})


def removal(svc, who):
    """Take an entry off the board: the teacher any, a student their own."""
    removable = [b for b in svc.library.board() if svc.room.can_manage(who, b.owner_id)]
    if not removable:
        return
    names = {b.run: f"{b.author} · {b.name} · {b.run}" for b in removable}
    c1, c2 = st.columns([3, 1])
    pick = c1.selectbox("Entry", list(names), format_func=names.get, key="board_pick",
                        label_visibility="collapsed")
    if c2.button("Remove from the board", key="board_remove"):
        try:
            svc.library.remove_from_board(pick, who)
            st.toast("Taken off the board.")
        except USER_ERRORS as e:
            st.error(str(e))


st.title("Class board")
session_id()
board()
