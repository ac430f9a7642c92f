"""This browser's identity and what the server keeps for it (the rules are in the service).

Identity: a signed token (``<id>.<HMAC>``, ptuning_core/store/identity.py) in the cookie
``ptuning_studio_id``. Streamlit shows a session the cookies of the request that opened it
(``st.context.cookies``, read-only); the cookie is written by a two-line script in ``st.html``
(Streamlit's own element, not iframed) the first time a browser comes, so every later tab and
refresh brings the same identity. Editing the cookie cannot make someone else's identity: the
signature would not match and the browser gets a new one.
"""
from __future__ import annotations

import json

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException, StopException

from ptuning_core.api import USER_ERRORS
from ui.state import dataset_context, service

COOKIE = "ptuning_studio_id"
KEPT = ("template", "template_input", "dataset", "model", "upload", "hfdata", "label_tokens")


def request_token():
    """The identity token the browser sent when this session connected (None if none)."""
    return st.context.cookies.get(COOKIE)


def identity() -> str:
    """This browser's identity; the first call of a session signs in and brings back what the
    server kept for it (name, template, dataset, model, upload)."""
    ss = st.session_state
    if "sid" not in ss:
        who, new_token = service().room.sign_in(request_token())
        ss["sid"] = who
        ss["_cookie_to_set"] = new_token
        _restore(who)
    return ss["sid"]


def session_id() -> str:
    """This browser's identity (the signed cookie, ``identity``): the owner of what it starts
    and its session in the queue. Every tab and refresh of one browser has the same."""
    who = identity()
    service().room.heartbeat(who)
    return who


def _restore(who: str) -> None:
    """Bring back what the server kept (what the session already holds wins)."""
    ss = st.session_state
    kept = service().room.working_state(who)
    ss["_problems"] = kept.pop("problems")
    kept["author"] = kept.pop("name")
    for key in ("author", "upload", "hfdata", "model", "dataset", "label_tokens"):
        if kept.get(key) and key not in ss:
            ss[key] = kept[key]
    if kept.get("template") and "template" not in ss and "template_input" not in ss:
        ss["template"] = kept["template"]
        ss["template_input"] = ss["_last_input"] = kept.get("template_input") or \
            kept["template"]
        ss["_tpl_from_link"] = True  # Template Studio keeps it instead of the dataset's
    ss.setdefault("_pin_seen", kept.get("pin_seen"))
    # what the server holds: each run writes only what differs from it
    ss["_kept"] = {k: kept.get(k) for k in KEPT} | {
        "name": kept.get("author") or "", "pin_seen": kept.get("pin_seen"),
        "template_input": kept.get("template_input") or kept.get("template"),
        "upload": (kept["upload"]["name"], kept["upload"]["train_ref"])
        if kept.get("upload") else None,
        "hfdata": (kept["hfdata"]["name"], kept["hfdata"]["train_ref"])
        if kept.get("hfdata") else None}


def start_session() -> str:
    """Once per script run, before the pages: identity, heartbeat, the class's pinned template
    and dataset (applied once per pin, so a student's own edits are not overwritten)."""
    who = session_id()
    ss = st.session_state
    svc = service()
    pin = svc.room.class_pin()
    if not pin:
        ss.pop("class_data", None)
        return who
    if ss.get("_class_for") != pin["version"]:
        try:
            ss["class_data"] = svc.room.class_data(who)
        except USER_ERRORS as e:
            ss["class_data"] = None
            ss.setdefault("_problems", []).append(f"the class dataset: {e}")
        ss["_class_for"] = pin["version"]
    if ss.get("_pin_seen") != pin["version"]:
        open_pin(pin)
    return who


def open_pin(pin: dict) -> None:
    """Open the pinned template and dataset (on this run's pages)."""
    ss = st.session_state
    ss["_pin_seen"] = pin["version"]
    if pin["dataset"].startswith("class:") and not ss.get("class_data"):
        return  # its data could not be opened; the problem is shown in the sidebar
    ss["_dataset_next"] = pin["dataset"]  # the sidebar selects it (its widget may exist)
    ss["template"] = ss["template_input"] = ss["_last_input"] = pin["template"]
    ss["_tpl_from_link"] = True
    ss.pop("verbalizer", None)


def _snapshot() -> dict:
    """What this session holds now, as kept on the server (data contexts by name and file)."""
    ss = st.session_state
    out = {k: ss.get(k) for k in KEPT}
    # a dataset a button chose on this run (the sidebar selects it on the next): kept now,
    # with the upload that came with it, so a refresh straight after finds both
    out["dataset"] = ss.get("_dataset_next") or out["dataset"]
    if out["template_input"]:
        ss["_last_input"] = out["template_input"]
    else:  # Template Studio is not on this page: what was typed there last
        out["template_input"] = ss.get("_last_input") or out["template"]
    out["name"] = ss.get("author", ss.get("_author")) or ""
    out["pin_seen"] = ss.get("_pin_seen")
    for k in ("upload", "hfdata"):  # compared by name and file, not by rows
        if out[k]:
            out[k] = (out[k]["name"], out[k]["train_ref"])
    return out


def remember() -> None:
    """After each run of the page: keep what changed in this session (only that) with the
    identity on the server, so another tab's newer change to something else is not undone.

    It runs in app.py's ``finally``, often while a newer request (a click, Enter, a page switch)
    is waiting; every read of ``st.session_state`` is a point where Streamlit raises that
    request as a Rerun/StopException. Left alone, it cut this function short and what the
    user had just typed was never kept (a new tab then opened on an older template). So the
    state is kept first, and the request is raised again after, not lost. A run that is
    stopped (its session closing, or a run stuck past Streamlit's patience) cannot read the
    state at all: app.py therefore also calls this before the page runs, when what the user
    typed or chose for this run is already in the session."""
    interrupted = None
    for _ in range(10):  # each raise consumes the request, so this ends at once
        try:
            _remember()
            break
        except StopException:
            raise  # the session is closing: every read raises it again; app.py kept it earlier
        except ScriptControlException as e:
            interrupted = e
    if interrupted is not None:
        raise interrupted


def _remember() -> None:
    ss = st.session_state
    who = ss.get("sid")
    if not who:
        return
    now, before = _snapshot(), ss.get("_kept") or {}
    changed = [k for k in now if now[k] != before.get(k)]
    if not changed:
        return
    service().room.keep_working_state(who, {k: ss.get(k) if k in ("upload", "hfdata") else now[k]
                                       for k in changed})
    ss["_kept"] = now


# ---- sidebar ----------------------------------------------------------------------------------
def classroom_sidebar() -> None:
    """The class part of the sidebar: who you are, the pin, the teacher's controls; and the
    script that gives a new browser its identity cookie."""
    svc, ss = service(), st.session_state
    who = ss["sid"]
    with st.sidebar:
        for p in ss.pop("_problems", None) or []:
            st.warning(f"Could not bring back {p}")
        pin = svc.room.class_pin()
        if pin:
            st.caption(f"Class template pinned by {pin['by']}: `{pin['template']}` on "
                       f"{pin['dataset']}")
            if st.button("Open the class template", key="open_pin"):
                open_pin(pin)
                st.rerun()
        if svc.room.teacher_mode:
            _teacher_controls(who, pin)
        if ss.get("_cookie_to_set"):
            _write_cookie(ss["_cookie_to_set"])


def _teacher_controls(who: str, pin) -> None:
    svc = service()
    if not svc.room.is_teacher(who):
        with st.expander("Teacher"):
            with st.form("teacher_form", clear_on_submit=True, border=False):
                code = st.text_input("Teacher code", type="password", key="teacher_code")
                go = st.form_submit_button("Enter teacher mode")
            if go:
                try:
                    svc.room.become_teacher(who, code)
                    st.rerun()
                except USER_ERRORS as e:
                    st.error(str(e))
        return
    st.markdown("### Teacher")
    st.caption("You can stop any run (Train page queue), take any entry off the class board, "
               "and pin the template and dataset every student's Studio opens on.")
    ctx = dataset_context()
    if ctx and st.button("Pin for the class", key="pin_class",
                         help="this template and dataset become the class's: every student's "
                              "Studio opens on them once"):
        tpl = st.session_state.get("template")
        try:
            if not tpl:
                st.error("Write a template in Template Studio first.")
            else:
                st.session_state["_pin_seen"] = svc.room.pin_class(who, tpl, ctx)["version"]
                st.rerun()
        except USER_ERRORS as e:
            st.error(str(e))
    if pin and st.button("Unpin the class template", key="unpin_class"):
        svc.room.unpin_class(who)
        st.rerun()
    if st.button("Leave teacher mode", key="leave_teacher"):
        svc.room.leave_teacher(who)
        st.rerun()


def _write_cookie(token: str) -> None:
    """Store the identity in the browser for a year (every tab and refresh of this site)."""
    st.html("<script>document.cookie = " + json.dumps(f"{COOKIE}={token}") +
            " + '; path=/; max-age=31536000; SameSite=Lax'"
            " + (location.protocol === 'https:' ? '; Secure' : '');</script>",
            unsafe_allow_javascript=True)
