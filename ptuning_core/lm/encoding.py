"""Turn (template, example) into token ids with a role per position, for one tokenizer.

Roles: ``special`` (BOS/CLS/SEP), ``text`` (discrete template words), ``field`` (the example's
text), ``anchor``, ``pseudo`` (a trainable position; its id is only a placeholder) and ``mask``
(the [MASK] token of a masked LM). For a causal LM there is no mask token: the label slot is the
last position, whose logits predict the label word (the position *before* the label word).

Whitespace rule: runs of spaces become one space; an element keeps a leading space when the
template has whitespace before it. Label words inherit the space before [MASK], so BPE
tokenizers (GPT-2, Llama-3 style 'Ġword') score " great", not "great".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ptuning_core.template import Anchor, Field, Mask, Pseudo, Template, TemplateError, Text, parse

ROLES = ("special", "text", "field", "anchor", "pseudo", "mask")


@dataclass
class Encoded:
    ids: list
    roles: list
    pseudo_idx: list  # -1, or the index of the pseudo token at that position
    label_pos: int
    truncated: bool = False

    @property
    def first_pseudo(self) -> int:
        for i, p in enumerate(self.pseudo_idx):
            if p >= 0:
                return i
        return -1


@dataclass
class Layout:
    """A template compiled for one tokenizer and model kind."""
    template: Template
    kind: str
    n_pseudo: int
    pseudo_init_ids: list  # per pseudo token: a token id to start from, or None (random)
    mask_space_before: bool
    prefix_special: list
    suffix_special: list
    warnings: list = field(default_factory=list)
    pseudo_counts: list = field(default_factory=list)  # pseudo tokens per [P...] segment


def _special_affixes(tok) -> tuple[list, list]:
    probe = "hello"
    with_ = tok(probe, add_special_tokens=True)["input_ids"]
    without = tok(probe, add_special_tokens=False)["input_ids"]
    n = len(without)
    for i in range(len(with_) - n + 1):
        if with_[i:i + n] == without:
            return list(with_[:i]), list(with_[i + n:])
    return [], []


def _space_before(segments, i) -> bool:
    if i == 0:
        return False
    prev = segments[i - 1]
    return isinstance(prev, Text) and prev.text[-1:].isspace()


def compile_layout(template, tokenizer, kind: str, fields=None) -> Layout:
    tpl = parse(template) if isinstance(template, str) else template
    if fields is not None:
        tpl.check_fields(fields)
    if kind == "causal":
        tpl = tpl.for_causal()
    warnings = list(tpl.warnings)
    inits: list = []
    counts: list = []
    for i, s in enumerate(tpl.segments):
        if isinstance(s, Pseudo):
            if s.init is None:
                inits += [None] * s.count
                counts.append(s.count)
            else:
                word = (" " if _space_before(tpl.segments, i) else "") + s.init
                ids = tokenizer(word, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise TemplateError(f"[P:{s.init}] has no tokens in this model's vocabulary",
                                        s.start)
                inits += list(ids)
                counts.append(len(ids))
    if kind == "masked" and tokenizer.mask_token_id is None:
        raise TemplateError("this masked model's tokenizer has no mask token", 0)
    pre, suf = _special_affixes(tokenizer)
    if kind == "causal":
        suf = []
        mi = tpl.mask_index
        if mi == 0 and not pre:
            raise TemplateError("a causal model needs something before [MASK] to read",
                                tpl.segments[0].start)
    return Layout(tpl, kind, len(inits), inits, _space_before(tpl.segments, tpl.mask_index),
                  pre, suf, warnings, counts)


def _clean(value) -> str:
    return re.sub(r"\s+", " ", "" if value is None else str(value)).strip()


def _tokenize_chunk(tokenizer, parts, at_start: bool):
    """parts: list of (text, role, space_before). Returns (ids, roles)."""
    text, spans = "", []
    for piece, role, space in parts:
        if not piece:
            continue
        if space and (text or not at_start):
            text += " "
        spans.append((len(text), len(text) + len(piece), role))
        text += piece
    if not text.strip():
        return [], []
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError):
        ids, roles = [], []
        for s, e, role in spans:
            piece_ids = tokenizer(text[max(0, s - 1) if s and text[s - 1] == " " else s:e],
                                  add_special_tokens=False)["input_ids"]
            ids += piece_ids
            roles += [role] * len(piece_ids)
        return ids, roles
    roles = []
    for (s, e) in offs:
        role = "text"
        # a token belongs to the span holding its first non-space character
        j = s
        while j < e and j < len(text) and text[j] == " ":
            j += 1
        for (a, b, r) in spans:
            if a <= j < b:
                role = r
                break
        roles.append(role)
    return list(ids), roles


def encode(layout: Layout, example: dict, tokenizer, max_length: Optional[int] = None,
           _field_limit: Optional[int] = None) -> Encoded:
    segs = layout.template.segments
    ids: list = list(layout.prefix_special)
    roles: list = ["special"] * len(ids)
    pidx: list = [-1] * len(ids)
    chunk: list = []
    k = 0
    label_pos = -1
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def flush():
        nonlocal chunk
        if chunk:
            cids, croles = _tokenize_chunk(tokenizer, chunk, at_start=not ids)
            ids.extend(cids)
            roles.extend(croles)
            pidx.extend([-1] * len(cids))
            chunk = []

    for i, s in enumerate(segs):
        sp = _space_before(segs, i)
        if isinstance(s, Text):
            body = re.sub(r"\s+", " ", s.text)
            lead = body[:1] == " "
            body = body.strip()
            if body:
                chunk.append((body, "text", lead or sp))
            elif lead and chunk:
                pass  # whitespace only: it is carried by the next element's space flag
        elif isinstance(s, Field):
            value = _clean(example.get(s.name))
            if _field_limit is not None:
                value = " ".join(value.split(" ")[:_field_limit])
            chunk.append((value, "field", sp))
        elif isinstance(s, Anchor):
            chunk.append((_clean(s.text), "anchor", sp))
        elif isinstance(s, Pseudo):
            flush()
            n = s.count if s.init is None else None
            if n is None:
                word = (" " if sp else "") + s.init
                n = len(tokenizer(word, add_special_tokens=False)["input_ids"])
            for _ in range(n):
                ids.append(pad)
                roles.append("pseudo")
                pidx.append(k)
                k += 1
        elif isinstance(s, Mask):
            flush()
            if layout.kind == "masked":
                label_pos = len(ids)
                ids.append(tokenizer.mask_token_id)
                roles.append("mask")
                pidx.append(-1)
            else:
                label_pos = len(ids) - 1
    flush()
    if layout.kind == "masked":
        ids += layout.suffix_special
        roles += ["special"] * len(layout.suffix_special)
        pidx += [-1] * len(layout.suffix_special)
    enc = Encoded(ids, roles, pidx, label_pos)
    if max_length is None or len(ids) <= max_length or _field_limit is not None:
        return enc
    if not any(r == "field" for r in roles):
        raise TemplateError(f"the template alone is {len(ids)} tokens, longer than the "
                            f"model's context of {max_length}", 0)
    # Too long: cut every field to at most `limit` words, shrinking until it fits.
    longest = max(len(_clean(example.get(s.name)).split(" "))
                  for s in segs if isinstance(s, Field))
    limit = max(1, int(longest * max_length / len(ids)))
    while True:
        enc = encode(layout, example, tokenizer, max_length, limit)
        if len(enc.ids) <= max_length:
            enc.truncated = True
            return enc
        if limit == 1:
            raise TemplateError(f"the template is longer than the model's context of "
                                f"{max_length} tokens even with the example's text cut", 0)
        limit = max(1, int(limit * 0.8))


def label_token_ids(layout: Layout, tokenizer, word: str) -> list:
    text = (" " if layout.mask_space_before else "") + word.strip()
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def token_strip(layout: Layout, example: dict, tokenizer, max_length=None) -> list[dict]:
    """One dict per position: token text (as the model sees it) and role. For the app's strip."""
    enc = encode(layout, example, tokenizer, max_length)
    out = []
    for i, (tid, role) in enumerate(zip(enc.ids, enc.roles)):
        if role == "pseudo":
            init = layout.pseudo_init_ids[enc.pseudo_idx[i]]
            label = f"P{enc.pseudo_idx[i]}" + (f"≈{tokenizer.decode([init])}" if init is not None
                                                else "")
        else:
            label = tokenizer.decode([tid])
        out.append({"pos": i, "token": label, "role": role, "id": int(tid)})
    if layout.kind == "causal":
        out.append({"pos": len(enc.ids), "token": "[label]", "role": "mask", "id": -1})
    return out
