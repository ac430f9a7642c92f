"""Tiny randomly initialised backbones built inside the tests (no network, no files)."""
from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM,
                          GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)

from ptuning_core.lm.backbone import Backbone

WORDS = ("the a an movie film story was is it this that great terrible good bad fine awful nice "
         "not very really i loved hated boring fun plot acting . , ! ? yes no capital of france "
         "paris berlin germany rome italy spain madrid news sports world business about").split()


def bpe_like_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level with GPT-2 style 'Ġ' leading-space pieces; 'terrific' splits in two."""
    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2}
    for w in WORDS + ["terr", "ific"]:
        vocab["Ġ" + w] = len(vocab)
        vocab[w] = len(vocab)
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="Ġ", prepend_scheme="never")
    t.decoder = decoders.Metaspace(replacement="Ġ", prepend_scheme="never")
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", unk_token="<unk>",
                                   eos_token="<eos>")


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    for w in WORDS:
        vocab[w] = len(vocab)
    vocab["##ific"] = len(vocab)
    vocab["terr"] = len(vocab)
    t = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.decoder = decoders.WordPiece()
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tiny_causal(arch: str = "llama", seed: int = 0) -> Backbone:
    tok = bpe_like_tokenizer()
    torch.manual_seed(seed)
    V = len(tok)
    if arch == "gpt2":
        m = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4,
                                       n_positions=128, pad_token_id=0, initializer_range=0.3))
    else:
        m = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.3,
                                         pad_token_id=0))
    return Backbone(f"tiny-{arch}", _frozen(m), tok, "causal", torch.device("cpu"))


def tiny_masked(arch: str = "bert", seed: int = 0) -> Backbone:
    tok = wordpiece_tokenizer()
    torch.manual_seed(seed)
    V = len(tok)
    if arch == "distilbert":
        m = DistilBertForMaskedLM(DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4,
                                                   hidden_dim=64, max_position_embeddings=128, initializer_range=0.3,
                                                   pad_token_id=0))
    else:
        m = BertForMaskedLM(BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=64,
                                       max_position_embeddings=128, pad_token_id=0, initializer_range=0.3))
    return Backbone(f"tiny-{arch}", _frozen(m), tok, "masked", torch.device("cpu"))
