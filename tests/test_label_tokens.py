"""Learned label tokens (a trainable vector per class, scored like a word) on tiny models:
scored through the LM head's own geometry, trained with the prompt, stored and reloaded
identically (runs, prompt files, eval/predict)."""
import pytest
import torch
import torch.nn.functional as F

from ptuning_core import cli

from ptuning_core.lm import registry
from ptuning_core.engine.experiment import RunSpec, prepare, submit_and_run
from ptuning_core.lm.label_tokens import FILE, head_features, output_projection
from ptuning_core.engine.learned import load_prompt, predict, prompt_model
from ptuning_core.lm.model import PromptModel, masked_lm_head
from ptuning_core.engine.portable import export_prompt, import_prompt
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import ConfigError, TrainConfig
from ptuning_core.lm.verbalizer import Verbalizer
from tiny import tiny_causal, tiny_masked

VERB = {"negative": ["terrible"], "positive": ["great"]}
EX = [{"sentence": "the movie was great", "label": "positive"},
      {"sentence": "bad plot and awful acting", "label": "negative"}]


def tpl_for(bb):
    return "{sentence} [P*2] It was [MASK]" + (" ." if bb.kind == "masked" else "")


@pytest.fixture(scope="module")
def tiny_models():
    made = {}
    for kind, build in (("causal", tiny_causal), ("masked", tiny_masked)):
        bb = build()
        bb.name = f"tiny-labels-{kind}"
        registry.put(bb)
        made[kind] = bb
    yield made
    for bb in made.values():
        registry.unload(bb.name, "cpu")


@pytest.mark.parametrize("build,arch", [(tiny_causal, "llama"), (tiny_causal, "gpt2"),
                                        (tiny_masked, "bert"), (tiny_masked, "distilbert")])
def test_label_vectors_use_the_heads_own_geometry(build, arch):
    bb = build(arch)
    h = torch.randn(3, bb.hidden_size)
    head = bb.model.get_output_embeddings() if bb.kind == "causal" else masked_lm_head(bb.model)
    W, b = output_projection(bb.model)
    assert torch.allclose(head(h), F.linear(head_features(bb.model, bb.kind)(h), W, b),
                          atol=1e-5)
    # started at the label words, a class's probability is exactly the word verbalizer's
    verb = Verbalizer.parse(VERB)
    pw = PromptModel(bb, tpl_for(bb), verb, "lstm", 3)
    pl = PromptModel(bb, tpl_for(bb), verb, "lstm", 3, label_tokens="learned")
    batch = pw.collate(pw.encode(EX))
    with torch.no_grad():
        sw, sl = pw.scores(batch)[0], pl.scores(batch)[0]
    assert torch.allclose(sw.softmax(-1), sl.softmax(-1), atol=1e-5)
    assert (sl < sw).all()  # one more token per class in the softmax: a little less each


def test_random_init_is_per_seed_and_not_the_words(tiny_models):
    bb, verb = tiny_models["causal"], Verbalizer.parse(VERB)
    make = lambda seed: PromptModel(bb, tpl_for(bb), verb, "lstm", seed, label_tokens="learned",  # noqa: E731
                                    label_init="random").label_vectors.vectors.detach()
    word = PromptModel(bb, tpl_for(bb), verb, "lstm", 1,
                       label_tokens="learned").label_vectors.vectors.detach()
    assert torch.equal(make(1), make(1)) and not torch.equal(make(1), make(2))
    assert not torch.allclose(make(1), word)


def test_learned_labels_need_classes_and_valid_settings():
    spec = RunSpec(template="[P] The capital of {subject} is [MASK]", train="facts-capital:train",
                   eval="facts-capital:test", train_cfg=TrainConfig(label_tokens="learned"))
    with pytest.raises(ConfigError, match="need classes"):
        prepare(spec)
    with pytest.raises(ConfigError, match="label tokens"):
        TrainConfig(label_tokens="vectors").validate()
    with pytest.raises(ConfigError, match="label init"):
        TrainConfig(label_init="zeros").validate()


def train_learned(bb, steps=25, init="word"):
    spec = RunSpec(template=tpl_for(bb), train="sentiment:train", eval="sentiment:test",
                   verbalizer=VERB, model=bb.name, shots=4, max_eval=24, device="cpu",
                   train_cfg=TrainConfig(steps=steps, batch_size=8, lr=0.02, snapshot_every=0,
                                         label_tokens="learned", label_init=init))
    store = RunStore()
    res = submit_and_run(spec, store)
    return store, store.list()[0]["id"], res


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_learned_labels_train_store_and_reload_identically(tiny_models, tmp_path, capsys, kind):
    bb = tiny_models[kind]
    store, rid, res = train_learned(bb)
    losses = res["train"]["losses"]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # full batch: the loss falls
    lt = store.tensors(rid, FILE)
    assert set(lt) == {"vectors", "bias", "init"}
    assert not torch.allclose(lt["vectors"], lt["init"])  # the label vectors moved
    W, _ = output_projection(bb.model)
    first = [bb.tokenizer.encode(" terrible" if kind == "causal" else "terrible",
                                 add_special_tokens=False)[0],
             bb.tokenizer.encode(" great" if kind == "causal" else "great",
                                 add_special_tokens=False)[0]]
    assert torch.equal(lt["init"], W[first].float())  # started at the label words
    assert res["label_tokens"]["classes"] == ["negative", "positive"]
    assert len(res["label_tokens"]["nearest"]) == 2
    # the trained vectors count among the trainable parameters
    assert res["train"]["trainable_parameters"] > 2 * bb.hidden_size
    # reloaded from the store: every example's probabilities are the run's
    stored = store.get(rid)["result"]["details"]["continuous"]["predictions"]
    lp = load_prompt(rid, store)
    assert lp.label_vectors is not None
    pm = prompt_model(lp, bb)
    for p in stored[:10]:
        got = predict(lp, pm, {"sentence": p["text"]})
        assert {k: round(v, 4) for k, v in zip(got.labels, got.probs)} == p["probs"]
    # ... and not by chance: the same prompt read with its label words scores differently
    words = prompt_model(lp.__class__(**{**lp.__dict__, "label_vectors": None}), bb)
    assert any(predict(lp, words, {"sentence": p["text"]}).probs !=
               predict(lp, pm, {"sentence": p["text"]}).probs for p in stored[:10])
    # eval of the stored run on its own data is the run's accuracy
    assert cli.main(["eval", rid, "--json"]) == 0
    import json
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["continuous"] == res["continuous"]
    # exported and imported: the same numbers without the encoder
    path = export_prompt(store, rid, tmp_path / "p.safetensors")
    lpf = load_prompt(path)
    assert torch.equal(lpf.label_vectors["vectors"], lt["vectors"])
    pf = prompt_model(lpf, bb)
    for p in stored[:5]:
        got = predict(lpf, pf, {"sentence": p["text"]})
        assert {k: round(v, 4) for k, v in zip(got.labels, got.probs)} == p["probs"]
    rid2 = import_prompt(store, path)
    assert torch.equal(store.tensors(rid2, FILE)["vectors"], lt["vectors"])
    assert cli.main(["eval", rid2, "--eval", "sentiment:test", "--max-eval", "24",
                     "--json"]) == 0
    ev2 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev2["continuous"]["accuracy"] == res["continuous"]["accuracy"]


def test_cli_run_takes_label_tokens(tiny_models, capsys):
    bb = tiny_models["causal"]
    code = cli.main(["run", "--model", bb.name, "--train", "sentiment:train", "--eval",
                     "sentiment:test", "--template", tpl_for(bb), "--verbalizer",
                     '{"negative": ["terrible"], "positive": ["great"]}', "--shots", "4",
                     "--steps", "3", "--max-eval", "10", "--device", "cpu",
                     "--label-tokens", "learned", "--label-init", "random", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    import json
    res = json.loads(out.out.strip().splitlines()[-1])
    assert res["label_tokens"]["init"] == "random"
    rid = RunStore().list()[0]["id"]
    assert RunStore().get(rid)["config"]["train_cfg"]["label_tokens"] == "learned"
