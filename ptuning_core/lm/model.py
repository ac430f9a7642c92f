"""The prompt model: splice pseudo embeddings into the frozen LM and score the label slot.
Batching (``batching.py``), the prefix key/value cache (``kvcache.py``) and the mapping of labels
to targets (``targets.py``) live in their own small modules.

Two paths give the same logits and gradients:
* plain: the whole sequence goes through the LM every step;
* fast (causal LMs): the tokens before the first pseudo token do not depend on the prompt, so
  their keys/values are computed once (``PrefixCache``) and each step runs only the rest.
Only the label slot goes through the LM head (plus the auxiliary-loss positions when it is on).
"""
from __future__ import annotations

import inspect
import itertools
import weakref
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ptuning_core.lm.backbone import Backbone
from ptuning_core.lm.batching import Batch, collate
from ptuning_core.lm.encoder import PromptEncoder, initial_embeddings
from ptuning_core.lm.encoding import Encoded, compile_layout, encode
from ptuning_core.lm import label_tokens as LT
from ptuning_core.lm.kvcache import (SHARED, PrefixCache, build_prefix_cache, cache_kwarg, cache_layers,
                      new_cache, out_cache, prefix_bytes)
from ptuning_core.lm.precision import autocast, lowp_model, no_autocast, resolve_precision
from ptuning_core.lm.targets import gold_ids
from ptuning_core.lm.verbalizer import CompiledVerbalizer, Verbalizer

FROZEN_ROLES = ("special", "field")  # an example's own text: the same under every prompt
_SCOPES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model object -> token


def _scope_token(model) -> int:
    """A token per model object (a fine-tuned deep copy is another object: another token)."""
    tok = _SCOPES.get(model)
    if tok is None:
        tok = _SCOPES[model] = next(_TOKENS)
    return tok


_TOKENS = itertools.count(1)

def masked_lm_head(model):
    """The MLM head as a callable on hidden states (so only chosen positions are projected)."""
    for name in ("cls", "lm_head", "predictions"):
        m = getattr(model, name, None)
        if isinstance(m, nn.Module):
            return m
    if hasattr(model, "vocab_projector"):  # DistilBERT
        def head(h):
            h = model.activation(model.vocab_transform(h))
            return model.vocab_projector(model.vocab_layer_norm(h))
        return head
    if hasattr(model, "generator_lm_head"):  # ELECTRA generator
        return lambda h: model.generator_lm_head(model.generator_predictions(h))
    return None


class PromptModel(nn.Module):
    def __init__(self, backbone: Backbone, template, verbalizer: Optional[Verbalizer] = None,
                 encoder: str = "lstm", seed: int = 13, fields=None,
                 label_tokens: str = "words", label_init: str = "word"):
        super().__init__()
        object.__setattr__(self, "backbone", backbone)  # frozen, shared: not a submodule
        tok = backbone.tokenizer
        self.layout = compile_layout(template, tok, backbone.kind, fields)
        self.verbalizer = verbalizer
        self.cverb: Optional[CompiledVerbalizer] = (verbalizer.compile(self.layout, tok)
                                                    if verbalizer is not None else None)
        self.encoder_type = encoder
        self.seed = seed
        # Per-run generators only (never the process-wide RNG, which other threads use): one
        # for the random init vectors, one for the encoder's parameters.
        gen = torch.Generator().manual_seed(seed)
        base = initial_embeddings(backbone.embeddings, self.layout.pseudo_init_ids, gen)
        self.encoder = (PromptEncoder(base, encoder, generator=torch.Generator().manual_seed(seed))
                        if self.layout.n_pseudo else None)
        if self.encoder is not None:
            self.encoder.to(backbone.device)
        self.precision = "fp32"
        self._bind(backbone.model)
        # The LM head always computes in fp32 from the fp32 weights (only the label slot goes
        # through it): class scores differ by fractions of a logit, below bf16's resolution at
        # the logits' scale, and bf16 logits cost ~20 points of accuracy on sentiment.
        if backbone.kind == "causal":
            self._head = backbone.model.get_output_embeddings()
        else:
            self._head = masked_lm_head(backbone.model)
        self._fixed_prompt: Optional[torch.Tensor] = None
        if self.cverb is not None:
            C, W = len(self.cverb.classes), len(self.cverb.word_ids)
            M = torch.zeros(C, W)
            for w, c in enumerate(self.cverb.word_class):
                M[c, w] = 1.0
            M = M / M.sum(1, keepdim=True)
            self.register_buffer("_avg", M.to(backbone.device), persistent=False)
            self.register_buffer("_first_ids", torch.tensor(
                [w[0] for w in self.cverb.word_ids], device=backbone.device), persistent=False)
        self.label_vectors: Optional[LT.LabelVectors] = None
        self.label_init = label_init if label_tokens == "learned" else None
        if label_tokens == "learned":
            self._init_label_vectors(label_init, seed)
        elif label_tokens != "words":
            raise ValueError(f"label_tokens must be words or learned, got '{label_tokens}'")

    def _init_label_vectors(self, how: str, seed: int) -> None:
        """One trainable vector per class (label_tokens.py), started at the class's first
        label word (or at random)."""
        if self.cverb is None:
            raise ValueError("learned label tokens need classes (a verbalizer)")
        self._features = LT.head_features(self.backbone.model, self.kind)
        W, b = LT.output_projection(self.backbone.model)
        if self._features is None or W is None:
            raise ValueError("this model's LM head is not recognised: learned label tokens "
                             "need its output projection")
        first = {}
        for w, c in enumerate(self.cverb.word_class):
            first.setdefault(c, self.cverb.word_ids[w][0])
        ids = [first[c] for c in range(len(self.cverb.classes))]
        gen = torch.Generator().manual_seed(seed + 7919)
        self.label_vectors = LT.LabelVectors.initial(W, b, ids, how, gen).to(self.device)

    def trainable_parameters(self) -> list:
        """What training updates: the prompt encoder and, when learned, the label vectors."""
        mods = [m for m in (self.encoder, self.label_vectors) if m is not None]
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    def trainable_state(self) -> dict:
        out = {}
        for name, m in (("encoder", self.encoder), ("labels", self.label_vectors)):
            if m is not None:
                out.update({f"{name}.{k}": v.detach().clone() for k, v in m.state_dict().items()})
        return out

    def load_trainable_state(self, state: dict) -> None:
        for name, m in (("encoder", self.encoder), ("labels", self.label_vectors)):
            if m is not None:
                m.load_state_dict({k[len(name) + 1:]: v for k, v in state.items()
                                   if k.startswith(name + ".")})

    def _bind(self, model) -> None:
        """Run the LM's forward through ``model`` (the backbone's, or its bf16 copy)."""
        self._body = model.base_model
        self._dtype = model.dtype
        self._ckw = cache_kwarg(self._body)
        self._pos_ok = "position_ids" in inspect.signature(self._body.forward).parameters

    def set_precision(self, precision: str) -> str:
        """fp32 | bf16 | auto for the frozen LM's forward; returns the resolved one. The encoder
        stays fp32."""
        self.precision = resolve_precision(precision, self.device)
        self._bind(lowp_model(self.backbone) if self.precision == "bf16"
                   else self.backbone.model)
        return self.precision

    def autocast(self):
        """The context every forward of this model runs in (see ``precision.autocast``)."""
        return autocast(self.device, self.precision)

    # ---- basic properties -------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.backbone.kind

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def warnings(self) -> list:
        words_scored = self.cverb is not None and self.label_vectors is None
        return list(self.layout.warnings) + (list(self.cverb.warnings) if words_scored else [])

    @property
    def classes(self) -> Optional[list]:
        return self.cverb.classes if self.cverb else None

    def prompt_embeddings(self) -> Optional[torch.Tensor]:
        if self._fixed_prompt is not None:
            return self._fixed_prompt
        if self.encoder is None:
            return None
        with no_autocast(self.device):  # the encoder computes in fp32 whatever the LM does
            return self.encoder()

    def set_fixed_prompt(self, emb: Optional[torch.Tensor]) -> None:
        """Use stored embeddings instead of the encoder (inference without the encoder)."""
        self._fixed_prompt = None if emb is None else emb.to(self.device, self.backbone.dtype)

    # ---- encoding ----------------------------------------------------------------------
    def encode(self, examples) -> list:
        tok = self.backbone.tokenizer
        return [encode(self.layout, ex, tok, self.backbone.max_length) for ex in examples]

    def collate(self, encs: list) -> Batch:
        return collate(encs, self.backbone.tokenizer.pad_token_id or 0, self.kind == "causal",
                       self.device)

    # ---- forward pieces ----------------------------------------------------------------
    def _embed(self, input_ids, pseudo_idx, prompt):
        emb = F.embedding(input_ids, self.backbone.embeddings)
        if prompt is not None and prompt.shape[0]:
            sel = (pseudo_idx >= 0).unsqueeze(-1)
            emb = torch.where(sel, prompt.to(emb.dtype)[pseudo_idx.clamp(min=0)], emb)
        return emb

    def _run_body(self, emb, mask, pos, cache=None, use_cache=False):
        kw = {"inputs_embeds": emb.to(self._dtype), "attention_mask": mask}
        if pos is not None and self._pos_ok:
            kw["position_ids"] = pos
        if self.kind == "causal":
            kw["use_cache"] = use_cache
            if cache is not None:
                kw[self._ckw] = cache
        out = self._body(**kw)
        return out.last_hidden_state, (out_cache(out) if use_cache else None)

    def _logits(self, h):
        if self._head is None:
            raise RuntimeError("this masked model's LM head is not recognised")
        with no_autocast(h.device):
            return self._head(h.float()).float()

    def _class_scores(self, slot_logp, cache, mask, last_pos):
        """(B, V) log-probs at the slot -> (B, C) class scores (mean log-prob of each class's words)."""
        word_lp = slot_logp[:, self._first_ids]
        if self.kind == "causal" and self.cverb.multi_token:
            layers = cache_layers(cache)
            cols = []
            for w, ids in enumerate(self.cverb.word_ids):
                if len(ids) == 1:
                    cols.append(word_lp[:, w])
                    continue
                B = slot_logp.shape[0]
                t = torch.tensor(ids, device=self.device)
                emb = F.embedding(t[:-1], self.backbone.embeddings).unsqueeze(0).expand(B, -1, -1)
                n = len(ids) - 1
                m2 = torch.cat([mask, torch.ones(B, n, dtype=mask.dtype, device=mask.device)], 1)
                pos = last_pos.unsqueeze(1) + torch.arange(1, n + 1, device=self.device)
                h, _ = self._run_body(emb, m2, pos, new_cache(layers), use_cache=True)
                lp = torch.log_softmax(self._logits(h), -1)  # (B, n, V)
                cont = lp.gather(2, t[1:].view(1, n, 1).expand(B, n, 1)).squeeze(2)
                cols.append(torch.cat([word_lp[:, w:w + 1], cont], 1).mean(1))
            word_lp = torch.stack(cols, 1)
        return word_lp @ self._avg.T

    def _finish(self, h, lpos, cache, mask, last_pos):
        hs = h[torch.arange(h.shape[0], device=h.device), lpos]
        if self.label_vectors is not None:  # scored like words of an extended vocabulary
            f = self._features(hs)
            return LT.class_log_probs(self._logits(hs), self.label_vectors.logits(f))
        logp = torch.log_softmax(self._logits(hs), -1)
        if self.cverb is None:
            return logp
        return self._class_scores(logp, cache, mask, last_pos)

    def scores(self, batch: Batch, aux_generator: Optional[torch.Generator] = None):
        """Plain path. Returns (scores, aux_loss or None): class scores (B, C), or (B, V)
        vocabulary log-probs in open-vocabulary mode. The class is always scored on the clean
        input; a masked LM's auxiliary loss runs on a separate masked copy (second forward)."""
        prompt = self.prompt_embeddings()
        emb = self._embed(batch.input_ids, batch.pseudo_idx, prompt)
        multi = self.cverb is not None and self.cverb.multi_token and self.kind == "causal"
        h, cache = self._run_body(emb, batch.attention_mask, batch.position_ids, use_cache=multi)
        last_pos = batch.position_ids[:, -1] if batch.position_ids is not None else None
        out = self._finish(h, batch.label_pos, cache, batch.attention_mask, last_pos)
        aux = None
        if aux_generator is not None:
            if self.kind == "masked":
                aux = self._masked_aux(batch, prompt, aux_generator)
            else:
                aux = self._causal_aux(h, batch.input_ids, batch.text_mask, batch.first_pseudo)
        return out, aux

    def _masked_aux(self, batch: Batch, prompt, generator: torch.Generator):
        """MLM loss on a copy of the batch with 15% of the text tokens replaced by [MASK]."""
        ids = batch.input_ids
        r = torch.rand(ids.shape, generator=generator).to(ids.device)
        pick = batch.text_mask & (r < 0.15)
        masked = torch.where(pick, torch.full_like(ids, self.backbone.tokenizer.mask_token_id),
                             ids)
        emb = self._embed(masked, batch.pseudo_idx, prompt)
        h, _ = self._run_body(emb, batch.attention_mask, batch.position_ids)
        if not pick.any():
            return h.sum() * 0
        return F.cross_entropy(self._logits(h[pick]), ids[pick])

    def _causal_aux(self, h, ids, textm, first):
        """Next-token loss on the text tokens that follow the first pseudo token (the only ones
        whose prediction depends on the prompt)."""
        L = ids.shape[1]
        j = torch.arange(L - 1, device=ids.device).unsqueeze(0)
        sel = textm[:, 1:] & (j >= first.unsqueeze(1))
        if not sel.any():
            return h.sum() * 0
        return F.cross_entropy(self._logits(h[:, :-1][sel]), ids[:, 1:][sel])

    # ---- pieces for running several prompt models in one forward (cobatch.py) ----------
    def embed(self, input_ids, pseudo_idx, prompt):
        """Token embeddings with ``prompt``'s rows spliced in where ``pseudo_idx`` >= 0."""
        return self._embed(input_ids, pseudo_idx, prompt)

    def body(self, emb, mask, pos, cache_layers=None):
        """Hidden states of the frozen LM (after a prefix given as per-layer keys/values)."""
        cache = new_cache(cache_layers) if cache_layers is not None else None
        return self._run_body(emb, mask, pos, cache)[0]

    def slot_scores(self, h, label_pos):
        """Class scores (single-token label words) or vocabulary log-probs at the label slot."""
        return self._finish(h, label_pos, None, None, None)

    # ---- fast path (causal) ------------------------------------------------------------
    def fast_path_possible(self, encs) -> bool:
        return (self.kind == "causal" and self.encoder is not None
                and all(e.first_pseudo > 0 for e in encs))

    def prefix_bytes(self, encs) -> int:
        return prefix_bytes(self.backbone, encs)

    def prefix_scope(self) -> tuple:
        """What a prefix's keys/values depend on besides its tokens: the model object and the
        precision of its forward."""
        return (_scope_token(self._body), self.precision)

    @torch.no_grad()
    def build_prefix_cache(self, encs, chunk: int = 64, lengths: Optional[list] = None,
                           shared: bool = True) -> PrefixCache:
        """The frozen prefixes of ``encs`` (before the first pseudo token, or the first
        ``lengths[i]`` tokens); ``shared``: from / into the process's ``kvcache.SHARED``."""
        ns = lengths if lengths is not None else [e.first_pseudo for e in encs]
        body = lambda emb, mask, pos: self._run_body(emb, mask, pos, use_cache=True)[1]  # noqa
        if shared:
            return SHARED.cache_for(body, self.backbone, self.prefix_scope(),
                                    [e.ids[:n] for e, n in zip(encs, ns)], self.device, chunk)
        return build_prefix_cache(body, self.backbone, encs, self.device, chunk, ns)

    def frozen_prefix_lengths(self, encs) -> Optional[list]:
        """Per example, how many leading tokens are its own text (special tokens and fields,
        before any prompt token), whose keys/values every prompt shares; None where there is
        nothing to share (a masked LM, a template that starts with prompt tokens)."""
        if self.kind != "causal":
            return None
        out = []
        for e in encs:
            n = 0
            while n < len(e.roles) and e.roles[n] in FROZEN_ROLES and e.pseudo_idx[n] < 0:
                n += 1
            n = min(n, e.label_pos)  # the label slot's own position runs with the rest
            if n < 1 or not any(r == "field" for r in e.roles[:n]):
                return None
            out.append(n)
        return out

    def fast_scores(self, encs: list, prefix: PrefixCache, rows: torch.Tensor,
                    aux: bool = False, split: Optional[list] = None):
        """Fast path for the examples ``encs`` whose prefixes are rows ``rows`` of ``prefix``
        (each example's tokens before its first pseudo token, or its first ``split[i]``)."""
        layers, pmask, plen = prefix.rows(rows)
        ns = split if split is not None else [e.first_pseudo for e in encs]
        rem = [Encoded(e.ids[n:], e.roles[n:], e.pseudo_idx[n:], e.label_pos - n)
               for e, n in zip(encs, ns)]
        b = self.collate(rem)
        pos = plen.unsqueeze(1) + b.position_ids
        mask = torch.cat([pmask, b.attention_mask], 1)
        emb = self._embed(b.input_ids, b.pseudo_idx, self.prompt_embeddings())
        multi = self.cverb is not None and self.cverb.multi_token
        h, cache = self._run_body(emb, mask, pos, new_cache(layers), use_cache=multi)
        out = self._finish(h, b.label_pos, cache, mask, pos[:, -1])
        aux_loss = self._causal_aux(h, b.input_ids, b.text_mask, b.first_pseudo) if aux else None
        return out, aux_loss

    # ---- targets -----------------------------------------------------------------------
    def gold_ids(self, labels: list) -> list:
        """Class index per label (classification), or the gold token id / -1 (open
        vocabulary): ``targets.gold_ids``."""
        return gold_ids(self.cverb, self.layout, self.backbone.tokenizer, labels)
