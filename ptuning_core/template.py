"""The template language: parse, validate, render back, convert discrete <-> continuous.

Grammar (one line):
    {name}        a field of the example (a column of the data)
    [MASK]        the label slot, exactly once
    [P] [P*4]     one / four pseudo tokens, random initialisation
    [P:word]      pseudo token(s) initialised from the embedding(s) of ``word``
    [A:text]      an anchor: discrete text kept on purpose, never converted
    other text    discrete words
    \\[ \\] \\{ \\} \\\\  literal brackets, braces and backslash

Parsing is a hand-written scanner; nothing is ever evaluated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

MAX_PSEUDO = 256
MAX_TEMPLATE_CHARS = 4000

_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPABLE = "[]{}\\"


class TemplateError(ValueError):
    """A template that cannot be used. ``position`` is the 0-based character offset."""

    def __init__(self, message: str, position: int = 0):
        self.message = message
        self.position = position
        super().__init__(f"{message} (at character {position + 1})")


@dataclass(frozen=True)
class Text:
    text: str
    start: int = 0
    end: int = 0
    role = "text"


@dataclass(frozen=True)
class Field:
    name: str
    start: int = 0
    end: int = 0
    role = "field"


@dataclass(frozen=True)
class Pseudo:
    count: int = 1
    init: Optional[str] = None  # word to initialise from, or None for random
    start: int = 0
    end: int = 0
    role = "pseudo"


@dataclass(frozen=True)
class Anchor:
    text: str
    start: int = 0
    end: int = 0
    role = "anchor"


@dataclass(frozen=True)
class Mask:
    start: int = 0
    end: int = 0
    role = "mask"


Segment = Union[Text, Field, Pseudo, Anchor, Mask]


@dataclass(frozen=True)
class Template:
    source: str
    segments: tuple
    warnings: tuple = field(default_factory=tuple)

    @property
    def fields(self) -> list[str]:
        seen: list[str] = []
        for s in self.segments:
            if isinstance(s, Field) and s.name not in seen:
                seen.append(s.name)
        return seen

    @property
    def has_pseudo(self) -> bool:
        return any(isinstance(s, Pseudo) for s in self.segments)

    @property
    def mask_index(self) -> int:
        return next(i for i, s in enumerate(self.segments) if isinstance(s, Mask))

    def to_source(self) -> str:
        return render(self.segments)

    def check_fields(self, available: Iterable[str]) -> None:
        avail = set(available)
        for s in self.segments:
            if isinstance(s, Field) and s.name not in avail:
                hint = ", ".join(sorted(avail)) or "none"
                raise TemplateError(
                    f"unknown field {{{s.name}}}: the data has the fields {hint}", s.start)

    def for_causal(self) -> "Template":
        """Causal LMs predict the next token: drop what follows [MASK], with a warning."""
        mi = self.mask_index
        tail = self.segments[mi + 1:]
        if not tail or all(isinstance(s, Text) and not s.text.strip() for s in tail):
            return Template(render(self.segments[: mi + 1]), self.segments[: mi + 1], self.warnings)
        dropped = render(tail).strip()
        w = (f"text after [MASK] is dropped for a causal model (it predicts the next token): "
             f"'{dropped}'")
        return Template(render(self.segments[: mi + 1]), self.segments[: mi + 1],
                        self.warnings + (w,))


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _ESCAPABLE else c for c in text)


def _escape_tag_body(text: str) -> str:
    return "".join("\\" + c if c in "[]\\" else c for c in text)


def render(segments: Iterable[Segment]) -> str:
    out = []
    for s in segments:
        if isinstance(s, Text):
            out.append(_escape(s.text))
        elif isinstance(s, Field):
            out.append("{" + s.name + "}")
        elif isinstance(s, Mask):
            out.append("[MASK]")
        elif isinstance(s, Anchor):
            out.append("[A:" + _escape_tag_body(s.text) + "]")
        elif isinstance(s, Pseudo):
            if s.init is not None:
                out.append("[P:" + _escape_tag_body(s.init) + "]")
            elif s.count == 1:
                out.append("[P]")
            else:
                out.append(f"[P*{s.count}]")
    return "".join(out)


def _read_until(src: str, i: int, close: str, open_pos: int, what: str) -> tuple[str, int]:
    """Read an escaped body from ``i`` up to the unescaped ``close``; return (body, index after)."""
    buf = []
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            if i + 1 < n and src[i + 1] in _ESCAPABLE:
                buf.append(src[i + 1])
                i += 2
                continue
            raise TemplateError("a backslash must be followed by [ ] { } or \\", i)
        if c == close:
            return "".join(buf), i + 1
        if c in "[{":
            raise TemplateError(f"unclosed {what}: found '{c}' before '{close}'", open_pos)
        buf.append(c)
        i += 1
    raise TemplateError(f"unclosed {what}: missing '{close}'", open_pos)


def parse(source: str, fields: Optional[Iterable[str]] = None) -> Template:
    """Parse a template. Raises TemplateError with a position; never anything else for a str."""
    if not isinstance(source, str):
        raise TemplateError("a template must be text", 0)
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"the template is longer than {MAX_TEMPLATE_CHARS} characters",
                            MAX_TEMPLATE_CHARS)
    if "\n" in source or "\r" in source:
        raise TemplateError("a template is one line", source.find("\n") if "\n" in source
                            else source.find("\r"))
    segs: list[Segment] = []
    buf: list[str] = []
    buf_start = 0
    i, n = 0, len(source)

    def flush(end: int):
        nonlocal buf
        if buf:
            segs.append(Text("".join(buf), buf_start, end))
            buf = []

    while i < n:
        c = source[i]
        if c == "\\":
            if i + 1 < n and source[i + 1] in _ESCAPABLE:
                if not buf:
                    buf_start = i
                buf.append(source[i + 1])
                i += 2
                continue
            raise TemplateError("a backslash must be followed by [ ] { } or \\", i)
        if c in "]}":
            raise TemplateError(f"'{c}' without an opening '{'[' if c == ']' else '{'}' "
                                f"(write \\{c} for a literal one)", i)
        if c == "{":
            body, j = _read_until(source, i + 1, "}", i, "field '{'")
            name = body.strip()
            if not name:
                raise TemplateError("empty field name '{}'", i)
            if not _FIELD_RE.match(name):
                raise TemplateError(f"bad field name '{{{body}}}': use letters, digits and _", i)
            flush(i)
            segs.append(Field(name, i, j))
            i = j
            continue
        if c == "[":
            body, j = _read_until(source, i + 1, "]", i, "tag '['")
            flush(i)
            segs.append(_tag(body, i, j))
            i = j
            continue
        if not buf:
            buf_start = i
        buf.append(c)
        i += 1
    flush(n)

    masks = [s for s in segs if isinstance(s, Mask)]
    if not masks:
        raise TemplateError("the template needs one [MASK] (the label slot)", n)
    if len(masks) > 1:
        raise TemplateError("[MASK] appears more than once", masks[1].start)
    total = sum(s.count for s in segs if isinstance(s, Pseudo))
    if total > MAX_PSEUDO:
        raise TemplateError(f"more than {MAX_PSEUDO} pseudo tokens", 0)
    t = Template(source, tuple(segs))
    if fields is not None:
        t.check_fields(fields)
    return t


def _tag(body: str, start: int, end: int) -> Segment:
    if body == "MASK":
        return Mask(start, end)
    if body == "P":
        return Pseudo(1, None, start, end)
    if body.startswith("P*"):
        num = body[2:].strip()
        if not num.isdigit() or not num.isascii():
            raise TemplateError(f"[P*n] needs a whole number, got '{body[2:]}'", start)
        count = int(num)
        if count < 1:
            raise TemplateError("[P*0]: the number of pseudo tokens must be at least 1", start)
        if count > MAX_PSEUDO:
            raise TemplateError(f"[P*{count}]: at most {MAX_PSEUDO} pseudo tokens", start)
        return Pseudo(count, None, start, end)
    if body.startswith("P:"):
        word = body[2:]
        if not word.strip():
            raise TemplateError("[P:word] needs a word to initialise from", start)
        return Pseudo(1, word.strip(), start, end)
    if body.startswith("A:"):
        text = body[2:]
        if not text.strip():
            raise TemplateError("[A:text] needs some text", start)
        return Anchor(text, start, end)
    if body.strip().upper() == "MASK":
        raise TemplateError("write the label slot exactly as [MASK]", start)
    raise TemplateError(f"unknown tag '[{body}]': use [MASK], [P], [P*n], [P:word] or [A:text]",
                        start)


def _as_template(t: Union[str, Template]) -> Template:
    return t if isinstance(t, Template) else parse(t)


_WORD_RE = re.compile(r"\s+|\S+")


def to_continuous(t: Union[str, Template]) -> str:
    """Turn every plain word into [P:word]; anchors, fields and [MASK] stay."""
    tpl = _as_template(t)
    segs: list[Segment] = []
    for s in tpl.segments:
        if isinstance(s, Text):
            for m in _WORD_RE.finditer(s.text):
                piece = m.group(0)
                segs.append(Text(piece) if piece.isspace() else Pseudo(1, piece))
        else:
            segs.append(s)
    return render(segs)


def from_words(t: Union[str, Template]) -> str:
    """The derived continuous template: the discrete version's prompt words become pseudo
    tokens that start at those words (``[P:word]``); fields, anchors and [MASK] stay. The
    method's own suggestion for a start that is not random (issue 22)."""
    return to_continuous(to_discrete(t))


def to_random(t: Union[str, Template]) -> str:
    """The same pseudo positions started at random: each ``[P:word]`` becomes ``[P]``."""
    tpl = _as_template(t)
    return render([Pseudo(1 if s.init is not None else s.count) if isinstance(s, Pseudo) else s
                   for s in tpl.segments])


def to_discrete(t: Union[str, Template]) -> str:
    """Turn [P:word] back into word and drop bare [P] / [P*n] (and the space they leave)."""
    tpl = _as_template(t)
    segs: list[Segment] = []
    for s in tpl.segments:
        if isinstance(s, Pseudo):
            if s.init is not None:
                segs.append(Text(s.init))
        else:
            segs.append(s)
    text = render(segs)
    return re.sub(r"  +", " ", text).strip()


def toggle_word(t: Union[str, Template], word_index: int) -> str:
    """Cycle the role of the ``word_index``-th editable word: discrete -> pseudo -> anchor -> discrete.

    Editable words are, in order: the words of plain text, [P:word] tokens and [A:text] anchors.
    Used by the app's word toggles; returns the rewritten template source.
    """
    tpl = _as_template(t)
    segs: list[Segment] = []
    k = 0
    for s in tpl.segments:
        if isinstance(s, Text):
            for m in _WORD_RE.finditer(s.text):
                piece = m.group(0)
                if piece.isspace():
                    segs.append(Text(piece))
                    continue
                segs.append(Pseudo(1, piece) if k == word_index else Text(piece))
                k += 1
        elif isinstance(s, Pseudo) and s.init is not None:
            segs.append(Anchor(s.init) if k == word_index else s)
            k += 1
        elif isinstance(s, Anchor):
            segs.append(Text(s.text) if k == word_index else s)
            k += 1
        else:
            segs.append(s)
    return render(segs)


def editable_words(t: Union[str, Template]) -> list[tuple[str, str]]:
    """(word, role) for each word ``toggle_word`` can cycle; role in discrete/pseudo/anchor."""
    tpl = _as_template(t)
    out = []
    for s in tpl.segments:
        if isinstance(s, Text):
            out += [(w, "discrete") for w in s.text.split()]
        elif isinstance(s, Pseudo) and s.init is not None:
            out.append((s.init, "pseudo"))
        elif isinstance(s, Anchor):
            out.append((s.text, "anchor"))
    return out


def anchors_to_pseudo(t: Union[str, Template]) -> str:
    """The 'without anchors' variant: every [A:text] becomes [P:text]."""
    tpl = _as_template(t)
    return render([Pseudo(1, s.text.strip()) if isinstance(s, Anchor) else s
                   for s in tpl.segments])
