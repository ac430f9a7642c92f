"""Template Studio: write a template, see its real tokens by role, mark words, preview."""
import pandas as pd
import streamlit as st

from ptuning_core.encoding import compile_layout, encode, label_token_ids, token_strip
from ptuning_core.experiment import USER_ERRORS
from ptuning_core.template import (TemplateError, editable_words, parse, to_continuous,
                                   to_discrete, toggle_word)
from ptuning_core.verbalizer import Verbalizer, VerbalizerError
from ui.common import backbone, dataset_context, error_html, service, token_strip_html

st.title("Template Studio")
bb = backbone()
ctx = dataset_context()
if bb is None or ctx is None:
    st.stop()

# the template follows the dataset unless the user has edited it
if st.session_state.get("_tpl_for") != (ctx["name"], bb.kind):
    st.session_state["_tpl_for"] = (ctx["name"], bb.kind)
    if not st.session_state.get("_tpl_from_link"):
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
tpl, layout = None, None
try:
    tpl = parse(src, fields=ctx["fields"])
    layout = compile_layout(tpl, bb.tokenizer, bb.kind)
    st.session_state["template"] = src  # only a template that compiles is carried to Train
    st.session_state.pop("template_error", None)
except TemplateError as e:
    st.session_state["template_error"] = e.message
    st.error(f"Template error: {e.message}")
    st.markdown(error_html(src, e.position), unsafe_allow_html=True)

if layout is not None:
    example = ctx["rows"][0]
    try:
        strip = token_strip(layout, example, bb.tokenizer, bb.max_length)
        st.markdown(token_strip_html(strip), unsafe_allow_html=True)
        n_tok = len(strip)
        st.caption(f"{n_tok} tokens on the first example · {layout.n_pseudo} pseudo tokens · "
                   f"context {bb.max_length}")
        if encode(layout, example, bb.tokenizer, bb.max_length).truncated:
            st.warning(f"this example is longer than the model's context ({bb.max_length} "
                       f"tokens): its text is cut to fit")
    except TemplateError as e:
        st.error(f"Template error: {e.message}")
    for w in layout.warnings:
        st.warning(w)

    st.markdown("**Words of the template** — click to cycle discrete → pseudo → anchor")
    def _set(new):
        st.session_state["template_input"] = new

    words = editable_words(tpl)
    if words:
        cols = st.columns(10)
        for i, (w, role) in enumerate(words):
            icon = {"discrete": "", "pseudo": ":material/blur_on: ",
                    "anchor": ":material/anchor: "}[role]
            cols[i % len(cols)].button(f"{icon}{w}", key=f"w{i}-{w}-{role}", help=f"now: {role}",
                                       on_click=_set, args=(toggle_word(tpl, i),))
    c1, c2, _ = st.columns([1, 1, 3])
    c1.button("Make continuous", on_click=_set, args=(to_continuous(tpl),))
    c2.button("Make discrete", on_click=_set, args=(to_discrete(tpl),))

# ---- verbalizer -----------------------------------------------------------------------------
verb = None
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
    try:
        verb = Verbalizer.parse(spec)
        if layout is not None:
            cv = verb.compile(layout, bb.tokenizer)
            toks = [{"class": c, "word": w,
                     "tokens": " | ".join(bb.tokenizer.decode([t])
                                          for t in label_token_ids(layout, bb.tokenizer, w))}
                    for c in verb.classes for w in verb.words[c]]
            st.dataframe(pd.DataFrame(toks), hide_index=True)
            for w in cv.warnings:
                st.warning(w)
        st.session_state["verbalizer"] = verb.to_dict()
    except VerbalizerError as e:
        st.error(f"Verbalizer: {e}")
        verb = None

# ---- preview --------------------------------------------------------------------------------
if layout is not None and (verb is not None or ctx["vocab"]):
    st.subheader("Preview: zero-shot on the discrete version")
    dsrc = to_discrete(tpl)
    st.caption(f"discrete template: `{dsrc}`")
    rows = ctx["rows"][:5]
    try:
        preds = service().preview(st.session_state.get("model", "default"), dsrc,
                                  verb.to_dict() if verb is not None else None, ctx["fields"],
                                  ctx["label_field"], rows)
        table = []
        for p in preds:
            row = {"example": p["text"], "gold": p["gold"], "prediction": p["pred"]}
            row.update(p.get("probs", {}))
            table.append(row)
        st.dataframe(pd.DataFrame(table), hide_index=True)
    except USER_ERRORS as e:
        st.error(str(e))
