"""Runs page → *Try it* and *Evaluate on…* (AppTest, tiny model), and the service methods
behind them."""
import json

import pytest
import torch

from ptuning_core.lm.backbone import ModelLoadError
from ptuning_core.engine.experiment import RunSpec
from ptuning_core.engine.portable import FORMAT, PromptFileError, import_prompt
from ptuning_core.data.bundled import DataError
from ptuning_core.stats import fmt_pct
from ptuning_core.store.runs import atomic_save
from ptuning_core.engine.train import TrainConfig

VERB = {"negative": ["terrible"], "positive": ["great"]}
TEXT = "the movie was great"


def trained_run(svc, model, max_eval=12):
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer=VERB, model=model, shots=4,
                   max_eval=max_eval, train_cfg=TrainConfig(steps=4, batch_size=4, lr=0.05,
                                                            snapshot_every=0))
    job = svc._core.queue.get(svc.runs.train("setup", spec).id)
    job = svc._core.queue.wait(job.id, 120)
    assert job.status == "finished", job.error
    return job.run_id


def test_try_it_and_evaluate_on(tiny_app):
    svc, page = tiny_app
    rid = trained_run(svc, page.model)
    at = page("app_pages/runs.py")
    assert {"Try it", "Evaluate on…"} <= {e.label for e in at.expander}
    # Try it: nothing until the field has text, then the class probabilities as a bar chart
    assert not [c for c in at.get("plotly_chart") if "class probabilities" in c.proto.spec]
    at.text_input(key=f"try-{rid}-sentence").set_value(TEXT).run()
    assert not at.error, [e.value for e in at.error]
    specs = [c.proto.spec for c in at.get("plotly_chart") if "class probabilities" in c.proto.spec]
    assert len(specs) == 1
    bars = json.loads(specs[0])["data"][0]
    expected = svc.library.predict(rid, {"sentence": TEXT})
    assert bars["type"] == "bar" and bars["x"] == ["negative", "positive"]
    assert bars["y"] == pytest.approx(list(expected.probs))
    assert any(m.value.startswith(f"Prediction: **{expected.top}**") for m in at.markdown)
    # Evaluate on…: the run's own data by default; queued; accuracy with its interval when done
    assert at.selectbox(key=f"ev-data-{rid}").value == "sentiment:test"
    assert at.number_input(key=f"ev-n-{rid}").value == 12
    at.button(key=f"ev-go-{rid}").click().run()
    assert not at.error, [e.value for e in at.error]
    job = svc._core.queue.wait(at.session_state[f"ev-job-{rid}"], 120)
    assert job.status == "finished", job.error
    at.run()
    own = svc._core.store.get(rid)["result"]["continuous"]
    evs = svc.library.evaluations(rid)
    assert len(evs) == 1 and evs[0].eval_ref == "sentiment:test"
    assert evs[0].continuous.accuracy == own["accuracy"] and evs[0].continuous.n == own["n"] == 12
    assert any(m.label == "learned prompt accuracy" and m.value == fmt_pct(own["accuracy"])
               for m in at.metric), [(m.label, m.value) for m in at.metric]
    assert any("95% CI [" in c.value and "n=12" in c.value for c in at.caption)
    assert any("McNemar" in i.value for i in at.info)
    # another bundled split with other labels: one line, nothing queued
    at.selectbox(key=f"ev-data-{rid}").set_value("topics:test").run()
    at.button(key=f"ev-go-{rid}").click().run()
    assert len(at.error) == 1 and "not one of the verbalizer's classes" in at.error[0].value
    # an hf: reference that is not one
    at.selectbox(key=f"ev-data-{rid}").set_value("hf:").run()
    at.text_input(key=f"ev-hf-{rid}").set_value("hf:glue/sst2").run()
    at.button(key=f"ev-go-{rid}").click().run()
    assert len(at.error) == 1 and "hf:NAME[/CONFIG]:SPLIT" in at.error[0].value
    assert len(svc.library.evaluations(rid)) == 1


def test_runs_without_a_learned_prompt_offer_neither(tiny_app):
    svc, page = tiny_app
    svc._core.store.create("discrete", {"template": "{sentence} It was [MASK]"}, status="finished")
    at = page("app_pages/runs.py")
    assert not {"Try it", "Evaluate on…"} & {e.label for e in at.expander}


def test_service_predict_is_cached_and_checked(tiny_app, tmp_path):
    svc, page = tiny_app
    rid = trained_run(svc, page.model, max_eval=4)
    a = svc.library.predict(rid, {"sentence": TEXT})
    assert svc.library.predict(rid, {"sentence": TEXT}) is a  # remembered
    assert sum(a.probs) == pytest.approx(1.0) and a.labels == ("negative", "positive")
    with pytest.raises(DataError, match="sentence is missing"):
        svc.library.predict(rid, {"sentence": "  "})
    with pytest.raises(DataError, match="no field 'review'"):
        svc.library.predict(rid, {"sentence": TEXT, "review": "x"})
    with pytest.raises(PromptFileError, match="no run 0123456789ab"):
        svc.library.predict("0123456789ab", {"sentence": TEXT})
    # the fixed prompts kept are bounded
    svc.library.PROMPT_CACHE = 1
    other = trained_run(svc, page.model, max_eval=4)
    svc.library.predict(other, {"sentence": TEXT})
    assert list(svc.library._prompts) == [other]
    # a deleted run is not served from the cache
    svc._core.store.delete(rid)
    with pytest.raises(PromptFileError, match=f"no run {rid}"):
        svc.library.predict(rid, {"sentence": TEXT})
    # a prompt learned on a model this server does not allow
    f = tmp_path / "p.safetensors"
    emb = torch.randn(2, 32)
    atomic_save({"embeddings": emb, "init": emb}, f, {"ptuning": json.dumps({
        "format": FORMAT, "template": "{sentence} [P*2] It was [MASK]", "model": "nobody/else",
        "verbalizer": VERB})})
    new = import_prompt(svc._core.store, f)
    with pytest.raises(ModelLoadError, match="not on this server's list"):
        svc.library.predict(new, {"sentence": TEXT})
