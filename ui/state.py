"""The session's service and its chosen dataset: the bottom of ui/ (ui/classroom.py and
ui/common.py both use it; it imports neither)."""
from __future__ import annotations

import streamlit as st

from ptuning_core.api import DataError
from ptuning_core.service import Service


@st.cache_resource
def service() -> Service:
    return Service()


# ---- data -----------------------------------------------------------------------------------
def dataset_context(kind: str | None = None) -> dict | None:
    """The chosen dataset: rows, fields, label field, classes, default template/verbalizer and
    data references the core can load (bundled NAME:SPLIT or files the server wrote)."""
    name = st.session_state.get("dataset", "sentiment")
    if name.startswith("upload:"):
        up = st.session_state.get("upload")
        if not up:
            return None
        return up
    if name.startswith("hf:"):
        return st.session_state.get("hfdata")
    if name.startswith("class:"):  # an uploaded or Hugging Face dataset the teacher pinned
        return st.session_state.get("class_data")
    try:
        info = service().data.dataset_info(name)
    except DataError as e:
        st.error(str(e))
        return None
    rows = _bundled_rows(name, "train")
    return {"name": name, "train_ref": f"{name}:train", "eval_ref": f"{name}:test",
            "dev_ref": f"{name}:dev", "rows": rows, "fields": info["fields"],
            "label_field": info["label_field"], "classes": info["classes"],
            "verbalizer": info["verbalizer"], "templates": info["templates"],
            "ptuning_templates": info["ptuning_templates"], "description": info["description"],
            "vocab": info["label_space"] == "vocab"}


@st.cache_data(show_spinner=False)
def _bundled_rows(name: str, split: str) -> list:
    return service().data.dataset_rows(name, split)
