"""Learned label tokens: one trainable vector per class instead of a fixed label word.

The method notes ask whether the label words themselves can be replaced by free tokens (BERT's
``[unused*]``). Here each class gets a vector ``v_c`` that lives where the LM head's output
embeddings live, and is scored at the label slot exactly like a word of the vocabulary: the
head's features ``f`` at the slot (the hidden state itself for a causal LM; after the MLM
transform for a masked LM) give the logit ``f·v_c + b_c``, and the class score is that logit's
log-probability in the vocabulary extended by the class vectors. A word's score is ``f·w + b_w``
in the same softmax, so the two are directly comparable (and a vector initialised from a word
starts with exactly that word's score).

Initialisation (``label_init``): ``word``: the output-embedding row (and head bias) of the
class's first label word's first token (for tied heads that is its input embedding);
``random``: a vector drawn with the output vocabulary's per-dimension mean and std from a
per-run generator, bias the mean head bias. The vectors train with the prompt encoder and are
stored next to the prompt (``labels.safetensors``)."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("words", "learned")
INITS = ("word", "random")
FILE = "labels.safetensors"


def head_features(model, kind: str) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """The part of the LM head before its output projection, as a callable on hidden states
    (None when this masked model's head is not recognised)."""
    if kind == "causal":
        return lambda h: h  # the final norm is inside the base model; lm_head is the projection
    cls = getattr(model, "cls", None)
    if cls is not None and hasattr(getattr(cls, "predictions", None), "transform"):  # BERT
        return cls.predictions.transform
    lm = getattr(model, "lm_head", None)
    if lm is not None and all(hasattr(lm, a) for a in ("dense", "layer_norm")):  # RoBERTa
        act = getattr(lm, "activation", None) or (lambda x: F.gelu(x))
        return lambda h: lm.layer_norm(act(lm.dense(h)))
    if hasattr(model, "vocab_transform"):  # DistilBERT
        return lambda h: model.vocab_layer_norm(model.activation(model.vocab_transform(h)))
    if hasattr(model, "generator_predictions"):  # ELECTRA generator
        return model.generator_predictions
    return None


def output_projection(model) -> tuple:
    """(weight (V, d), bias (V,) or None) of the LM head's output projection."""
    out = model.get_output_embeddings()
    if out is None or getattr(out, "weight", None) is None:
        return None, None
    return out.weight, getattr(out, "bias", None)


class LabelVectors(nn.Module):
    """Trainable class vectors (C, d) and biases (C,), and where they started."""

    def __init__(self, vectors: torch.Tensor, bias: torch.Tensor,
                 init: Optional[torch.Tensor] = None):
        super().__init__()
        self.vectors = nn.Parameter(vectors.detach().float().clone())
        self.bias = nn.Parameter(bias.detach().float().clone())
        self.register_buffer("init", (vectors if init is None else init).detach().float()
                             .clone())

    @classmethod
    def initial(cls, weight: torch.Tensor, bias: Optional[torch.Tensor], first_ids: list,
                how: str, generator: torch.Generator) -> "LabelVectors":
        W = weight.detach().float().cpu()
        b = bias.detach().float().cpu() if bias is not None else None
        if how == "word":
            v = W[first_ids]
            bb = b[first_ids] if b is not None else torch.zeros(len(first_ids))
        elif how == "random":
            mean, std = W.mean(0), W.std(0)
            v = mean + std * torch.randn(len(first_ids), W.shape[1], generator=generator)
            bb = torch.full((len(first_ids),), float(b.mean()) if b is not None else 0.0)
        else:
            raise ValueError(f"label_init must be one of {', '.join(INITS)}, got '{how}'")
        return cls(v, bb)

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, d) head features -> (B, C) logits, like the head's own projection."""
        return F.linear(feats, self.vectors.to(feats.dtype), self.bias.to(feats.dtype)).float()

    def tensors(self) -> dict:
        """What is stored with the run (float32, CPU)."""
        return {"vectors": self.vectors.detach().float().cpu().clone(),
                "bias": self.bias.detach().float().cpu().clone(),
                "init": self.init.detach().float().cpu().clone()}

    def load(self, t: dict) -> None:
        """Set the vectors from stored tensors (``vectors``, ``bias``, optionally ``init``)."""
        v = t["vectors"]
        if tuple(v.shape) != tuple(self.vectors.shape):
            raise ValueError(f"stored label vectors have shape {tuple(v.shape)}, expected "
                             f"{tuple(self.vectors.shape)}")
        with torch.no_grad():
            self.vectors.copy_(v.to(self.vectors.device, self.vectors.dtype))
            self.bias.copy_(t["bias"].to(self.bias.device, self.bias.dtype))
            if "init" in t:
                self.init.copy_(t["init"].to(self.init.device, self.init.dtype))


def class_log_probs(vocab_logits: torch.Tensor, label_logits: torch.Tensor) -> torch.Tensor:
    """Each class vector's log-probability in the vocabulary extended by the class vectors."""
    z = torch.logsumexp(torch.cat([vocab_logits.float(), label_logits.float()], -1), -1,
                        keepdim=True)
    return label_logits.float() - z


def nearest(vectors: torch.Tensor, model, tokenizer, k: int = 5, words_only: bool = False) -> list:
    """Nearest vocabulary tokens (cosine, in the output-embedding space) of each vector."""
    from ptuning_core.lm.projections import nearest_tokens
    W, _ = output_projection(model)
    return nearest_tokens(vectors, W, tokenizer, k, words_only)


def cosine_to_init(t: dict) -> list:
    """Per class: cosine between the learned vector and where it started."""
    return [round(float(x), 4) for x in F.cosine_similarity(t["vectors"].float(),
                                                           t["init"].float(), dim=-1)]
