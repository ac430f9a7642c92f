"""Template Studio: write a template, see its real tokens by role, mark words, preview."""
import pandas as pd
import streamlit as st

from ptuning_core.api import SHOWN_ERRORS
from ui.common import backbone, dataset_context, error_html, service, token_strip_html

st.title("Template Studio")
bb = backbone()
ctx = dataset_context()
if bb is None or ctx is None:
    st.stop()

# the template follows the dataset unless the user has edited it
# (only when the dataset or model changes in this session: a template brought back from a link,
# a pin or the server on a new tab or refresh is kept, however the first runs of the page go)
prev_for = st.session_state.get("_tpl_for")
if prev_for != (ctx["name"], bb.kind):
    st.session_state["_tpl_for"] = (ctx["name"], bb.kind)
    if (prev_for is not None or not st.session_state.get("template_input")) and \
            not st.session_state.get("_tpl_from_link"):
        st.session_state["template_input"] = ctx["ptuning_templates"][bb.kind]
        st.session_state["verbalizer_df"] = None
    st.session_state["_tpl_from_link"] = False
if "template_input" not in st.session_state:  # back from another page: the last good template
    st.session_state["template_input"] = st.session_state.get("template") or \
        ctx["ptuning_templates"][bb.kind]

with st.expander("Template syntax", expanded=False):
    st.markdown("`{field}` example text · `[MASK]` label slot (once) · `[P]` / `[P*4]` pseudo "
                "tokens · `[P:word]` pseudo token starting at *word* · `[A:text]` anchor · "
                "`\\[ \\] \\{ \\}` literal brackets")

src = st.text_input("Template", key="template_input")
template_box = st.container()  # filled once the Studio view is computed below

spec = None  # the label words as edited (None: open vocabulary)
if ctx["vocab"]:
    st.info("Open-vocabulary task: the model may answer any single token (precision@1).")
else:
    st.subheader("Verbalizer")
    df = st.session_state.get("verbalizer_df")
    if df is None:
        df = pd.DataFrame([{"class": c, "label words": ", ".join(ws)}
                           for c, ws in ctx["verbalizer"].items()])
    edited = st.data_editor(df, key=f"verb-{ctx['name']}", num_rows="fixed",
                            disabled=["class"], hide_index=True)
    learned = st.toggle("Learned label tokens", value=st.session_state.get("label_tokens") ==
                        "learned", help="Train one vector per class, scored like a word and "
                        "started at the class's first label word, instead of keeping the words "
                        "fixed (Train uses this)")
    st.session_state["label_tokens"] = "learned" if learned else "words"
    spec = {r["class"]: [w.strip() for w in str(r["label words"]).split(",") if w.strip()]
            for _, r in edited.iterrows()}
verb_box = st.container()

model = st.session_state.get("model", "default")
try:
    view = service().inspect.studio(model, src, ctx["fields"], spec, ctx["rows"][0])
except SHOWN_ERRORS as e:
    st.error(str(e))
    st.stop()

st.session_state.pop("_tpl_link", None)  # a link's template: shown here, its error with it
with template_box:
    if not view.ok:
        st.session_state["template_error"] = view.error
        st.error(view.error_line)
        st.markdown(error_html(src, view.error_position), unsafe_allow_html=True)
    else:
        st.session_state["template"] = src  # only a template that compiles is carried to Train
        st.session_state.pop("template_error", None)
        if view.example_error:
            st.error(f"Template error: {view.example_error}")
        else:
            st.markdown(token_strip_html(view.tokens), unsafe_allow_html=True)
            st.caption(f"{view.n_tokens} tokens on the first example · {view.n_pseudo} pseudo "
                       f"tokens · context {view.max_length}")
            if view.truncated:
                st.warning(f"this example is longer than the model's context "
                           f"({view.max_length} tokens): its text is cut to fit")
        for w in view.warnings:
            st.warning(w)

        st.markdown("**Words of the template** — click to cycle discrete → pseudo → anchor")

        def _set(new):
            st.session_state["template_input"] = new

        if view.words:
            cols = st.columns(10)
            for i, w in enumerate(view.words):
                icon = {"discrete": "", "pseudo": ":material/blur_on: ",
                        "anchor": ":material/anchor: "}[w.role]
                cols[i % len(cols)].button(f"{icon}{w.word}", key=f"w{i}-{w.word}-{w.role}",
                                           help=f"now: {w.role}", on_click=_set,
                                           args=(w.source,))
        c1, c2, c3, c4 = st.columns(4)
        c1.button("Start from my words", on_click=_set, args=(view.words_source,),
                  help=f"`{view.words_source}`: each prompt word becomes a pseudo token that "
                       "starts at that word (fields, anchors and [MASK] stay)")
        c2.button("Start from random", on_click=_set, args=(view.random_source,),
                  help=f"`{view.random_source}`: the same pseudo positions, random start")
        c3.button("Make continuous", on_click=_set, args=(view.continuous_source,),
                  help="every plain word of this template becomes [P:word]")
        c4.button("Make discrete", on_click=_set, args=(view.discrete_source,))

# ---- verbalizer -----------------------------------------------------------------------------
with verb_box:
    if view.verbalizer_error:
        st.error(f"Verbalizer: {view.verbalizer_error}")
    elif view.label_tokens:
        st.dataframe(pd.DataFrame([{"class": t.cls, "word": t.word, "tokens": t.tokens}
                                   for t in view.label_tokens]), hide_index=True)
    for w in view.verbalizer_warnings:
        st.warning(w)
if view.verbalizer is not None:
    st.session_state["verbalizer"] = {c: list(ws) for c, ws in view.verbalizer.items()}

# ---- preview --------------------------------------------------------------------------------
if view.ok and (view.verbalizer is not None or ctx["vocab"]):
    st.subheader("Preview: zero-shot on the discrete version")
    st.caption(f"discrete template: `{view.discrete_source}`")
    try:
        preds = service().inspect.preview(model, view.discrete_source, view.verbalizer, ctx["fields"],
                                  ctx["label_field"], ctx["rows"][:5])
        st.dataframe(pd.DataFrame([p.as_row() for p in preds]), hide_index=True)
    except SHOWN_ERRORS as e:
        st.error(str(e))
