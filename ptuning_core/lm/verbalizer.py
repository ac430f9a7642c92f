"""Verbalizer: class -> label word(s), compiled to token ids for one tokenizer."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Union

from ptuning_core.lm.encoding import Layout, label_token_ids


class VerbalizerError(ValueError):
    pass


@dataclass
class Verbalizer:
    classes: list
    words: dict  # class -> list of words

    @classmethod
    def parse(cls, spec: Union[str, dict]) -> "Verbalizer":
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as e:
                raise VerbalizerError(f"the verbalizer is not valid JSON: {e.msg} at character "
                                      f"{e.pos + 1}") from None
        if not isinstance(spec, dict) or not spec:
            raise VerbalizerError('the verbalizer must map classes to words, e.g. '
                                  '{"0": ["terrible"], "1": ["great"]}')
        words = {}
        for c, ws in spec.items():
            if isinstance(ws, str):
                ws = [ws]
            if not isinstance(ws, list) or not ws or not all(isinstance(w, str) for w in ws):
                raise VerbalizerError(f"class '{c}' needs a word or a list of words")
            ws = [w.strip() for w in ws]
            if any(not w for w in ws):
                raise VerbalizerError(f"class '{c}' has an empty label word")
            words[str(c)] = ws
        if len(words) < 2:
            raise VerbalizerError("a verbalizer needs at least two classes")
        return cls(list(words), words)

    def to_dict(self) -> dict:
        return {c: list(self.words[c]) for c in self.classes}

    def compile(self, layout: Layout, tokenizer) -> "CompiledVerbalizer":
        kind = layout.kind
        word_ids, word_class, warnings = [], [], []
        seen = {}
        unk = getattr(tokenizer, "unk_token_id", None)
        for ci, c in enumerate(self.classes):
            for w in self.words[c]:
                ids = label_token_ids(layout, tokenizer, w)
                if not ids or (unk is not None and unk in ids):
                    raise VerbalizerError(f"the label word '{w}' of class '{c}' cannot be encoded "
                                          f"by this model's tokenizer")
                if kind == "masked" and len(ids) > 1:
                    warnings.append(f"'{w}' is {len(ids)} tokens for this masked model; only its "
                                    f"first piece '{tokenizer.decode(ids[:1]).strip()}' is scored")
                    ids = ids[:1]
                elif len(ids) > 1:
                    warnings.append(f"'{w}' is {len(ids)} tokens; it is scored by the mean "
                                    f"log-probability of its tokens")
                key = tuple(ids)
                if key in seen and seen[key] != c:
                    raise VerbalizerError(f"the label word '{w}' of class '{c}' is the same token(s) "
                                          f"as a word of class '{seen[key]}' for this model")
                seen[key] = c
                word_ids.append(ids)
                word_class.append(ci)
        return CompiledVerbalizer(self, word_ids, word_class, warnings)


@dataclass
class CompiledVerbalizer:
    verbalizer: Verbalizer
    word_ids: list  # per word: list of token ids
    word_class: list  # per word: class index
    warnings: list = field(default_factory=list)

    @property
    def classes(self):
        return self.verbalizer.classes

    @property
    def multi_token(self) -> bool:
        return any(len(w) > 1 for w in self.word_ids)
