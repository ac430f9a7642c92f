"""Experiments page, learned label tokens in Studio/Train/Embeddings (AppTest, tiny model)."""
import time

import pytest

from ptuning_core.engine import experiments as X
from ptuning_core.engine.experiment import RunSpec
from ptuning_core.engine.train import ConfigError, TrainConfig


def wait_jobs(svc, timeout=180):
    end = time.time() + timeout
    while time.time() < end and any(not j.done for j in svc._core.queue.jobs()):
        time.sleep(0.2)
    assert all(j.status == "finished" for j in svc._core.queue.jobs()), \
        [(j.status, j.error) for j in svc._core.queue.jobs()]


def test_experiments_page_runs_a_claim_and_shows_its_sentence(tiny_app, monkeypatch):
    svc, page = tiny_app
    at = page("app_pages/experiments.py")
    assert any("No experiment yet" in i.value for i in at.info)
    at.text_input(key="exp_seeds").set_value("1")
    at.text_input(key="exp_ks").set_value("2")
    next(b for b in at.button if b.label == "Run E1").click().run()
    assert not at.error, [e.value for e in at.error]
    wait_jobs(svc)
    stored = svc.library.experiments()
    assert len(stored) == 1 and stored[0]["experiment"] == "E1"
    res = svc.library.experiment(stored[0]["id"])
    assert res.settings["ks"] == [2] and res.settings["seeds"] == [1]
    at.run()  # the same browser (its owner) after the job finished
    assert any(i.value == res.sentence for i in at.info)
    assert res.sentence.startswith("E1 on sentiment (1 seed × 100 test examples")
    assert at.get("plotly_chart")
    df = at.dataframe[0].value
    assert set(df["arm"]) == {"discrete template", "P-tuning"}
    # the PNG download: each of its three cases, whatever is installed here
    import importlib.util

    import plotly.graph_objects as go
    real = importlib.util.find_spec

    def kaleido(present):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: (
            object() if present else None) if name == "kaleido" else real(name, *a, **k))

    def png_parts(at):
        caps = [c.value for c in at.caption if "PNG" in c.value]
        buttons = [b.proto.label for b in at.get("download_button")]
        return caps, buttons
    kaleido(False)
    at.run()
    caps, buttons = png_parts(at)
    assert caps == ["PNG: the kaleido package is not installed here, so use the camera button "
                    "in the chart's toolbar (top right of the chart)."]
    assert buttons == ["Download CSV"]
    kaleido(True)
    monkeypatch.setattr(go.Figure, "to_image", lambda self, *a, **k: (_ for _ in ()).throw(
        RuntimeError("Chrome is not installed")))
    at.run()
    assert png_parts(at) == (["PNG export failed (Chrome is not installed); use the chart's "
                              "camera button."], ["Download CSV"])
    monkeypatch.setattr(go.Figure, "to_image", lambda self, *a, **k: b"\x89PNG")
    at.run()
    assert png_parts(at) == ([], ["Download CSV", "Download PNG"])
    assert res.csv().startswith("experiment,arm,k,seed")
    # shared on the class board: it shows there with its headline accuracy
    at.toggle(key=f"share-{res.id}").set_value(True).run()
    assert svc._core.store.get(res.id)["shared"]
    board = page("app_pages/board.py").dataframe[0].value
    assert board["run"].tolist() == [res.id] and board["accuracy"].notna().all()


def test_submit_experiment_checks_before_queueing(tiny_app):
    svc, page = tiny_app
    with pytest.raises(ConfigError, match="unknown experiment"):
        svc.runs.experiment("t", X.ExperimentRequest("E7", model=page.model))
    with pytest.raises(ConfigError, match="at most"):
        svc.runs.experiment("t", X.ExperimentRequest("E1", model=page.model, steps=10 ** 4))
    with pytest.raises(Exception, match="not on this server"):
        svc.runs.experiment("t", X.ExperimentRequest("E1", model="someone/else"))
    assert not svc._core.queue.jobs()


def test_label_tokens_toggle_reaches_train_and_embeddings(tiny_app):
    svc, page = tiny_app
    at = page("app_pages/studio.py")
    at.toggle[0].set_value(True).run()
    assert at.session_state["label_tokens"] == "learned"
    job = svc._core.queue.get(svc.runs.train("t", RunSpec(
        template="{sentence} [P*2] It was [MASK]", train="sentiment:train", eval="sentiment:test",
        verbalizer={"negative": ["terrible"], "positive": ["great"]}, model=page.model, shots=4,
        max_eval=12, train_cfg=TrainConfig(steps=3, batch_size=4, label_tokens="learned"))).id)
    job = svc._core.queue.wait(job.id, 60)
    assert job.status == "finished", job.error
    at = page("app_pages/embeddings.py")
    assert any("Learned label tokens" in m.value for m in at.markdown)
    tables = [d.value for d in at.dataframe if "cosine to start" in d.value.columns]
    assert tables and tables[0]["class"].tolist() == ["negative", "positive"]
