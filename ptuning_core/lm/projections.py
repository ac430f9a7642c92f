"""Where learned pseudo embeddings sit in the vocabulary: nearest tokens, drift, 2-D maps."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F


def _display(tok, tid: int) -> str:
    return tok.decode([int(tid)])


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def is_word(s: str, spaced: bool = True) -> bool:
    """A whole word as a reader would see it: letters only, two or more; not a number,
    punctuation or a special token ("<|im_end|>"). ``spaced``: the tokenizer marks the start of
    a word with a space (GPT-2, Llama), so " great" is a word and "ing" a fragment; otherwise
    (WordPiece) fragments are the "##" ones."""
    if spaced:
        return s.startswith(" ") and bool(_WORD.fullmatch(s[1:]))
    return bool(_WORD.fullmatch(s))


def marks_word_starts(tokenizer) -> bool:
    """True for tokenizers whose word-start tokens decode with a leading space."""
    ids = tokenizer.encode("a the", add_special_tokens=False)
    return bool(ids) and tokenizer.decode([ids[-1]]).startswith(" ")


def nearest_tokens(emb: torch.Tensor, matrix: torch.Tensor, tokenizer, k: int = 5,
                   words_only: bool = False) -> list:
    """Per pseudo embedding: the k vocabulary tokens of highest cosine similarity."""
    E = F.normalize(matrix.detach().float(), dim=-1)
    q = F.normalize(emb.detach().float().to(E.device), dim=-1)
    sims = q @ E.T
    spaced = marks_word_starts(tokenizer) if words_only else True
    out = []
    for row in sims:
        vals, ids = torch.topk(row, min(len(row), k * 50 if words_only else k))
        items = []
        for v, i in zip(vals.tolist(), ids.tolist()):
            t = _display(tokenizer, i)
            if words_only and not is_word(t, spaced):
                continue
            items.append({"token": t, "id": i, "cosine": round(v, 4)})
            if len(items) == k:
                break
        out.append(items)
    return out


def drift(emb: torch.Tensor, init: torch.Tensor) -> list:
    """Cosine between each learned embedding and its initial value."""
    return [round(float(v), 4) for v in F.cosine_similarity(emb.float(), init.float(), dim=-1)]


def similarity_matrix(emb: torch.Tensor) -> list:
    e = F.normalize(emb.detach().float(), dim=-1)
    return (e @ e.T).tolist()


def discretize(layout, nearest: list) -> str:
    """The template with each pseudo token replaced by its nearest vocabulary token."""
    from ptuning_core.template import Pseudo, Text, render
    segs, k = [], 0
    counts = iter(layout.pseudo_counts)
    for s in layout.template.segments:
        if isinstance(s, Pseudo):
            words = []
            for _ in range(next(counts)):
                if k < len(nearest) and nearest[k]:
                    words.append(nearest[k][0]["token"].strip())
                k += 1
            segs.append(Text(" ".join(w for w in words if w)))
        else:
            segs.append(s)
    return re.sub(r"  +", " ", render(segs)).strip()


def project_2d(points, method: str = "pca", seed: int = 0):
    import numpy as np
    X = np.asarray(points, dtype="float64")
    if method == "tsne":
        from sklearn.manifold import TSNE
        return TSNE(n_components=2, random_state=seed, init="pca",
                    perplexity=min(30, max(2, len(X) // 4))).fit_transform(X)
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=seed).fit_transform(X)
