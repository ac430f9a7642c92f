"""Labels -> training/evaluation targets: a class index through the verbalizer, or (open
vocabulary) the gold word's token id, -1 when that word is not a single token."""
from __future__ import annotations

from ptuning_core.lm.encoding import label_token_ids


def gold_ids(cverb, layout, tokenizer, labels: list) -> list:
    if cverb is not None:
        idx = {c: i for i, c in enumerate(cverb.classes)}
        return [idx[str(l)] for l in labels]
    out = []
    for l in labels:
        ids = label_token_ids(layout, tokenizer, str(l))
        out.append(ids[0] if len(ids) == 1 else -1)
    return out
