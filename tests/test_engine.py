import pytest
import torch
import torch.nn.functional as F

from ptuning_core.lm.encoding import compile_layout, token_strip
from ptuning_core.engine.evaluate import evaluate
from ptuning_core.lm.model import PromptModel
from ptuning_core.engine.train import ConfigError, TrainConfig, train
from ptuning_core.lm.verbalizer import Verbalizer, VerbalizerError
from tiny import tiny_causal, tiny_masked

V2 = Verbalizer.parse({"0": ["terrible"], "1": ["great"]})
EX = [{"sentence": s, "label": l} for s, l in [
    ("the movie was good", "1"), ("the film was bad", "0"), ("i loved the story", "1"),
    ("the plot was boring", "0"), ("really fun", "1"), ("i hated the acting", "0"),
    ("a nice film", "1"), ("the movie was not good , really awful", "0")]]


@pytest.fixture(params=["llama", "gpt2"])
def causal(request):
    return tiny_causal(request.param)


@pytest.fixture(params=["bert", "distilbert"])
def masked(request):
    return tiny_masked(request.param)


def test_splice_puts_prompt_embeddings_at_pseudo_positions(causal):
    pm = PromptModel(causal, "{sentence} [P*3] it was [MASK]", V2)
    encs = pm.encode(EX[:3])
    b = pm.collate(encs)
    P = pm.prompt_embeddings()
    emb = pm._embed(b.input_ids, b.pseudo_idx, P)
    for row in range(3):
        cols = (b.pseudo_idx[row] >= 0).nonzero().flatten()
        assert len(cols) == 3
        assert torch.equal(emb[row, cols], P)
        other = (b.pseudo_idx[row] < 0).nonzero().flatten()
        assert torch.equal(emb[row, other], causal.embeddings[b.input_ids[row, other]])


def test_roles_and_whitespace(causal):
    lay = compile_layout("{sentence} [P:it] [A:!] was [MASK]", causal.tokenizer, "causal")
    strip = token_strip(lay, {"sentence": "the movie"}, causal.tokenizer)
    assert [t["role"] for t in strip] == ["field", "field", "pseudo", "anchor", "text", "mask"]
    assert strip[1]["token"] == " movie" and strip[4]["token"] == " was"
    # the label word carries the space before [MASK] ('Ġgreat'), the init word too
    assert lay.mask_space_before and lay.pseudo_init_ids == [causal.tokenizer.convert_tokens_to_ids("Ġit")]


def test_gradient_reaches_only_the_encoder(causal):
    pm = PromptModel(causal, "{sentence} [P*2] it was [MASK]", V2, "lstm")
    sc, _ = pm.scores(pm.collate(pm.encode(EX[:4])))
    F.cross_entropy(sc, torch.tensor([1, 0, 1, 0])).backward()
    assert all(p.grad is None for p in causal.model.parameters())
    grads = [p.grad for p in pm.encoder.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_word_init_starts_exactly_at_the_word(causal):
    for enc in ("lstm", "mlp", "none"):
        pm = PromptModel(causal, "{sentence} [P:it] [P:was] [MASK]", V2, enc)
        E = causal.embeddings
        ids = causal.tokenizer(" it was", add_special_tokens=False)["input_ids"]
        assert torch.allclose(pm.prompt_embeddings(), E[ids])


def _full_logprob(bb, ids_or_emb, target_pos):
    out = bb.model(inputs_embeds=ids_or_emb) if ids_or_emb.dim() == 3 else bb.model(ids_or_emb)
    return torch.log_softmax(out.logits[0, target_pos], -1)


def test_causal_label_slot_is_the_position_before_the_label_word(causal):
    """Scores equal the log-probability the LM gives the label word when it is appended."""
    pm = PromptModel(causal, "{sentence} [P*2] it was [MASK]", V2)
    enc = pm.encode(EX[:1])[0]
    b = pm.collate([enc])
    emb = pm._embed(b.input_ids, b.pseudo_idx, pm.prompt_embeddings())
    sc, _ = pm.scores(b)
    for ci, word in enumerate(["terrible", "great"]):
        wid = causal.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert len(wid) == 1
        full = torch.cat([emb, causal.embeddings[wid].unsqueeze(0)], 1)
        lp = _full_logprob(causal, full, full.shape[1] - 2)[wid[0]]
        assert torch.allclose(sc[0, ci], lp, atol=1e-5)
        # the classic off-by-one (reading the logits at the label word itself) differs
        wrong = _full_logprob(causal, full, full.shape[1] - 1)[wid[0]]
        assert not torch.allclose(sc[0, ci], wrong, atol=1e-4)


def test_multi_token_label_word_is_mean_teacher_forced_logprob(causal):
    verb = Verbalizer.parse({"0": ["not good"], "1": ["very good", "great"]})
    pm = PromptModel(causal, "{sentence} [P] it was [MASK]", verb)
    assert pm.cverb.multi_token
    encs = pm.encode(EX[:3])
    b = pm.collate(encs)  # mixed lengths: left padding in play
    sc, _ = pm.scores(b)
    for row, enc in enumerate(encs):
        emb = pm._embed(torch.tensor([enc.ids]), torch.tensor([enc.pseudo_idx]),
                        pm.prompt_embeddings())

        def word_lp(word):
            wid = causal.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            full = torch.cat([emb, causal.embeddings[wid].unsqueeze(0)], 1)
            logits = causal.model(inputs_embeds=full).logits[0]
            n = emb.shape[1]
            return torch.stack([torch.log_softmax(logits[n - 1 + j], -1)[t]
                                for j, t in enumerate(wid)]).mean()
        assert torch.allclose(sc[row, 0], word_lp("not good"), atol=1e-4)
        assert torch.allclose(sc[row, 1], (word_lp("very good") + word_lp("great")) / 2, atol=1e-4)


@pytest.mark.parametrize("tpl", ["{sentence} [P*3] it was [MASK]",
                                 "the {sentence} [P:it] [P] {sentence} was [MASK]"])
def test_fast_path_equals_plain_logits_and_gradients(causal, tpl):
    verb = Verbalizer.parse({"0": ["terrible"], "1": ["great", "very good"]})
    pm = PromptModel(causal, tpl, verb, "lstm")
    encs = pm.encode(EX)  # mixed lengths
    rows = torch.tensor([5, 0, 7, 2])
    benc = [encs[i] for i in rows]
    gold = torch.tensor([0, 1, 0, 0])

    def grads(fn):
        pm.encoder.zero_grad()
        sc, aux = fn()
        (F.cross_entropy(sc, gold) + 0.5 * aux).backward()
        return sc.detach(), [p.grad.clone() for p in pm.encoder.parameters()]
    gen = torch.Generator().manual_seed(0)
    s1, g1 = grads(lambda: pm.scores(pm.collate(benc), gen))
    prefix = pm.build_prefix_cache(encs)
    s2, g2 = grads(lambda: pm.fast_scores(benc, prefix, rows, aux=True))
    assert torch.allclose(s1, s2, atol=1e-4)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def test_masked_label_slot_is_the_mask_position(masked):
    pm = PromptModel(masked, "{sentence} [P*2] it was [MASK] .", V2)
    encs = pm.encode(EX[:3])
    b = pm.collate(encs)
    sc, _ = pm.scores(b)
    ids = [masked.tokenizer.convert_tokens_to_ids(w) for w in ("terrible", "great")]
    for row, enc in enumerate(encs):
        assert enc.roles[0] == "special" and enc.roles[-1] == "special"
        assert enc.ids[enc.label_pos] == masked.tokenizer.mask_token_id
        emb = pm._embed(torch.tensor([enc.ids]), torch.tensor([enc.pseudo_idx]),
                        pm.prompt_embeddings())
        lp = torch.log_softmax(masked.model(inputs_embeds=emb).logits[0, enc.label_pos], -1)
        assert torch.allclose(sc[row], lp[ids], atol=1e-5)


def test_masked_multi_token_word_uses_first_piece_with_warning(masked):
    verb = Verbalizer.parse({"0": ["terrible"], "1": ["terrific"]})
    pm = PromptModel(masked, "{sentence} it was [MASK] .", verb)
    assert any("first piece" in w for w in pm.warnings)


def test_verbalizer_refuses_collisions_and_unknown_words(causal, masked):
    lay = compile_layout("{sentence} [MASK]", causal.tokenizer, "causal")
    with pytest.raises(VerbalizerError, match="same token"):
        Verbalizer.parse({"a": ["great"], "b": ["great"]}).compile(lay, causal.tokenizer)
    lay = compile_layout("{sentence} [MASK]", masked.tokenizer, "masked")
    with pytest.raises(VerbalizerError, match="cannot be encoded"):
        Verbalizer.parse({"a": ["zzzqqq"], "b": ["great"]}).compile(lay, masked.tokenizer)
    with pytest.raises(VerbalizerError, match="JSON"):
        Verbalizer.parse("{not json")
    with pytest.raises(VerbalizerError, match="two classes"):
        Verbalizer.parse({"a": ["x"]})


@pytest.mark.parametrize("factory,tpl", [(tiny_causal, "{sentence} [P*3] it was [MASK]"),
                                         (tiny_masked, "{sentence} [P*3] it was [MASK] .")])
@pytest.mark.parametrize("encoder", ["lstm", "none"])
def test_loss_falls_on_a_toy_task(factory, tpl, encoder):
    """Every example gets the class the untrained prompt likes least: the prompt alone must
    learn to prefer its label word."""
    bb = factory()
    pm = PromptModel(bb, tpl, V2, encoder, seed=1)
    ones = [{"sentence": e["sentence"], "label": "1"} for e in EX]
    target = "0" if evaluate(pm, ones)["accuracy"] >= 0.5 else "1"
    data = [{"sentence": e["sentence"], "label": target} for e in EX]
    assert evaluate(pm, data)["accuracy"] <= 0.5
    events = []
    r = train(pm, data, TrainConfig(steps=30, lr=5e-2, batch_size=4, encoder=encoder),
              callback=events.append)
    assert r.losses[-1] < 0.5 * r.losses[0]
    assert [e["type"] for e in events][0] == "start" and events[-1]["type"] == "end"
    assert sum(e["type"] == "step" for e in events) == 30
    assert evaluate(pm, data)["accuracy"] == 1.0


def test_training_is_reproducible_on_cpu():
    runs = []
    for _ in range(2):
        bb = tiny_causal()
        pm = PromptModel(bb, "{sentence} [P*2] it was [MASK]", V2, "lstm", seed=7)
        runs.append(train(pm, EX, TrainConfig(steps=5, lr=1e-2, batch_size=3, seed=7)).losses)
    assert runs[0] == runs[1]


def test_stop_flag_ends_the_run_within_one_step():
    import threading
    bb = tiny_causal()
    pm = PromptModel(bb, "{sentence} [P*2] it was [MASK]", V2)
    stop = threading.Event()

    def cb(e):
        if e["type"] == "step" and e["step"] == 3:
            stop.set()
    r = train(pm, EX, TrainConfig(steps=50, batch_size=2), callback=cb, stop=stop)
    assert r.status == "stopped" and r.steps == 3


def test_dev_eval_and_early_stopping_restores_the_best_checkpoint():
    """A dev set whose accuracy cannot change (the same sentence with both labels: exactly one
    is right whatever the prompt) gives its best at the first evaluation; with patience 1 the
    second evaluation stops the run, and the encoder is put back to the step-1 weights."""
    bb = tiny_causal()
    pm = PromptModel(bb, "{sentence} [P*2] it was [MASK]", V2)
    dev = [{"sentence": "the movie was fine", "label": "0"},
           {"sentence": "the movie was fine", "label": "1"}]
    events, after_step = [], {}

    def cb(e):
        events.append(e)
        if e["type"] == "step":
            after_step[e["step"]] = {k: v.detach().clone()
                                     for k, v in pm.encoder.state_dict().items()}
    r = train(pm, EX, TrainConfig(steps=40, lr=5e-2, batch_size=2, eval_every=1, patience=1),
              dev=dev, callback=cb)
    assert r.status == "early-stopped"
    assert r.steps == 2 and r.dev == [(1, 0.5), (2, 0.5)]
    assert [e["step"] for e in events if e["type"] == "eval"] == [1, 2]
    assert events[-1]["type"] == "end" and events[-1]["status"] == "early-stopped"
    final = pm.encoder.state_dict()
    # step 2 moved the weights; the returned encoder is the best (step-1) checkpoint
    assert any(not torch.equal(after_step[1][k], after_step[2][k]) for k in final)
    assert all(torch.equal(final[k], after_step[1][k]) for k in final)


@pytest.mark.parametrize("factory,tpl", [(tiny_causal, "{sentence} [P*2] it was [MASK]"),
                                         (tiny_masked, "{sentence} [P*2] it was [MASK] .")])
def test_aux_loss_enters_the_gradient_with_its_weight(factory, tpl):
    """The gradient train() applies is exactly d(class loss) + aux_weight * d(aux loss), and the
    aux part is not zero (a loop that ignored the aux loss, or its weight, fails here)."""
    bb = factory()
    w = 0.7
    pm = PromptModel(bb, tpl, V2, "lstm")
    params = [p for p in pm.encoder.parameters() if p.requires_grad]
    data = [{"sentence": e["sentence"], "label": "1"} for e in EX]  # gold: class 1 everywhere
    expected, got, auxes = [], {}, []

    def spy(fn):
        def wrapped(*a, **k):
            sc, aux = fn(*a, **k)
            gold = torch.ones(sc.shape[0], dtype=torch.long)
            gc = torch.autograd.grad(F.cross_entropy(sc.float(), gold), params, retain_graph=True)
            ga = torch.autograd.grad(aux, params, retain_graph=True)
            expected.append((gc, ga))
            auxes.append(float(aux.detach()))
            return sc, aux
        return wrapped
    pm.scores = spy(pm.scores)
    pm.fast_scores = spy(pm.fast_scores)
    # the hooks also see the spy's own grad calls; train()'s backward comes last and stays
    hooks = [p.register_hook(lambda g, i=i: got.__setitem__(i, g.clone())) for i, p in
             enumerate(params)]
    events = []
    train(pm, data, TrainConfig(steps=1, batch_size=8, aux_weight=w), callback=events.append)
    for h in hooks:
        h.remove()
    assert len(expected) == 1 and len(got) == len(params)
    (gc, ga), actual = expected[0], got
    assert any(g.abs().sum() > 0 for g in ga)
    for i in range(len(params)):
        assert torch.allclose(actual[i], gc[i] + w * ga[i], atol=1e-6, rtol=1e-4)
    assert any(not torch.allclose(actual[i], gc[i], atol=1e-6, rtol=1e-4)
               for i in range(len(params)))
    step = next(e for e in events if e["type"] == "step")
    assert step["aux"] == pytest.approx(auxes[0]) and step["aux"] > 0


def test_masked_aux_loss_masks_a_copy_never_the_classified_input():
    """The class is scored on the clean input (only the label slot is [MASK]); the auxiliary
    loss runs a second forward on a copy with some text masked."""
    bb = tiny_masked()
    pm = PromptModel(bb, "{sentence} [P*2] it was [MASK] .", V2)
    mask_emb = bb.embeddings[bb.tokenizer.mask_token_id]
    seen = []
    hook = pm._body.register_forward_pre_hook(
        lambda mod, args, kw: seen.append((kw["inputs_embeds"] == mask_emb).all(-1).clone()),
        with_kwargs=True)
    b = pm.collate(pm.encode(EX))
    clean, _ = pm.scores(b)
    n_plain = len(seen)
    sc, aux = pm.scores(b, torch.Generator().manual_seed(3))
    hook.remove()
    assert n_plain == 1 and len(seen) == 3  # one forward without aux, two with it
    slot = torch.zeros_like(seen[0])
    slot[torch.arange(len(EX)), b.label_pos] = True
    assert torch.equal(seen[0], slot) and torch.equal(seen[1], slot)  # classified: clean
    extra = seen[2] & ~slot
    assert seen[2][slot].all() and extra.any() and (extra <= b.text_mask).all()
    assert torch.allclose(sc, clean) and aux is not None and float(aux.detach()) > 0


def test_same_seed_same_losses_alone_and_beside_other_threads(monkeypatch):
    """Nothing in a run reads or seeds torch's process-wide RNG: the same settings give the same
    losses alone and while another run trains and a third thread hammers the global RNG."""
    import threading
    tpl = "{sentence} [P] [P*2] it was [MASK]"

    def run(bb):
        pm = PromptModel(bb, tpl, V2, "lstm", seed=7)
        return train(pm, EX, TrainConfig(steps=6, lr=1e-2, batch_size=3, seed=7)).losses
    mine_bb, other_bb = tiny_causal(), tiny_masked()  # built before any thread starts
    alone_bb = tiny_causal()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with monkeypatch.context() as m:
        def global_rng(*a, **k):
            raise AssertionError("a run touched torch's process-wide RNG")
        for name in ("manual_seed", "seed", "set_rng_state"):
            m.setattr(torch, name, global_rng)
        m.setattr(torch.random, "fork_rng", global_rng)
        alone = run(alone_bb)
    assert torch.equal(torch.get_rng_state(), state)  # not seeded, not drawn from
    done, out, errors = threading.Event(), {}, []

    def guarded(fn):
        def go():
            try:
                fn()
            except BaseException as e:  # surfaced below
                errors.append(e)
        return go

    def noise():
        i = 0
        while not done.is_set():
            torch.manual_seed(i)
            torch.rand(257)
            i += 1

    def other():
        pm = PromptModel(other_bb, "{sentence} [P*3] it was [MASK] .", V2, "mlp", seed=99)
        train(pm, EX, TrainConfig(steps=8, batch_size=2, seed=99, aux_weight=0.5))

    def mine():
        out["losses"] = run(mine_bb)
    threads = [threading.Thread(target=guarded(f)) for f in (noise, other, mine)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(120)
    done.set()
    threads[0].join(10)
    assert not errors, errors
    assert out["losses"] == alone


def test_open_vocabulary_mode(causal):
    pm = PromptModel(causal, "the capital of {subject} is [P*2] [MASK]", None)
    data = [{"subject": "france", "label": "paris"}, {"subject": "germany", "label": "berlin"},
            {"subject": "italy", "label": "rome madrid"}]
    res = evaluate(pm, data)
    assert res["skipped"] == 1 and res["n"] == 2 and "top5" in res["predictions"][0]
    r = train(pm, data[:2] * 3, TrainConfig(steps=25, lr=3e-2, batch_size=2))
    assert r.losses[-1] < r.losses[0]


def test_config_limits():
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=0).validate()
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=float("nan")).validate()
    with pytest.raises(ConfigError, match="encoder"):
        TrainConfig(encoder="gru").validate()


def test_truncation_keeps_template_and_label_slot(causal):
    pm = PromptModel(causal, "{sentence} [P*2] it was [MASK]", V2)
    long = {"sentence": " ".join(["the movie"] * 200), "label": "1"}
    enc = pm.encode([long])[0]
    assert enc.truncated and len(enc.ids) <= causal.max_length
    assert enc.roles[-2:] == ["text", "text"] and enc.roles.count("pseudo") == 2


def test_resume_continues_from_stored_encoder_weights(tmp_path):
    from ptuning_core.lm import registry
    from ptuning_core.engine.experiment import RunSpec, run_experiment
    from ptuning_core.store.runs import RunStore
    bb = tiny_causal()
    bb.name = "tiny-resume"
    registry.put(bb)
    store = RunStore(tmp_path)
    base = dict(template="{sentence} [P*2] it was [MASK]", train="sentiment:train",
                eval="sentiment:test", verbalizer={"negative": ["terrible"],
                                                   "positive": ["great"]},
                model="tiny-resume", shots=4, max_eval=8, device="cpu")
    spec1 = RunSpec(**base, train_cfg=TrainConfig(steps=20, lr=3e-2, batch_size=4))
    first = store.create("a", spec1.to_dict(), status="running")
    run_experiment(spec1, store=store, run_id=first)
    second = store.create("b", {}, status="running")
    run_experiment(RunSpec(**base, resume=first, train_cfg=TrainConfig(steps=1, lr=1e-6)),
                   store=store, run_id=second)
    e1, e2 = store.tensors(first)["embeddings"], store.tensors(second)["embeddings"]
    init = store.tensors(first)["init"]
    # one tiny step from the stored weights: right where the first run ended, far from init
    assert (e1 - e2).abs().max() < 1e-3 < (e1 - init).abs().max()
    with pytest.raises(ConfigError, match="same template"):
        run_experiment(RunSpec(**{**base, "template": "{sentence} [P*3] it was [MASK]"},
                               resume=first), store=store, run_id=store.create("c", {}))
    with pytest.raises(ConfigError, match="another encoder"):
        run_experiment(RunSpec(**base, resume=first, train_cfg=TrainConfig(encoder="mlp")),
                       store=store, run_id=store.create("d", {}))
