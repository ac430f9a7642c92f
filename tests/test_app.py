"""The pages, driven with streamlit.testing (AppTest) on a tiny model."""
import time

import pytest


@pytest.fixture
def app(tiny_app):
    svc, page = tiny_app

    def make(path=None, **state):
        return page(path, **state)
    make.model = page.model
    return make


def strip_html(at):
    return "".join(m.value for m in at.markdown if "token-strip" in m.value)


def test_studio_token_strip_errors_and_toggles(app):
    at = app()
    html = strip_html(at)
    assert "pseudo token" in html and "label slot" in html
    at.text_input(key="template_input").set_value("{sentence} It was").run()
    assert any("needs one [MASK]" in e.value for e in at.error)
    assert any("<mark" in m.value for m in at.markdown)
    at.text_input(key="template_input").set_value("{sentence} It was [MASK]").run()
    assert not at.error
    # the first word button turns "It" into a pseudo token
    btn = next(b for b in at.button if b.label == "It")
    btn.click().run()
    assert at.text_input(key="template_input").value == "{sentence} [P:It] was [MASK]"
    next(b for b in at.button if b.label == "Make discrete").click().run()
    assert at.text_input(key="template_input").value == "{sentence} It was [MASK]"
    next(b for b in at.button if b.label == "Make continuous").click().run()
    assert at.text_input(key="template_input").value == "{sentence} [P:It] [P:was] [MASK]"
    # zero-shot preview of 5 examples with class probabilities
    assert any(len(df.value) == 5 and "positive" in df.value.columns for df in at.dataframe)


def test_text_after_mask_warns_for_causal(app):
    at = app()
    at.text_input(key="template_input").set_value("{sentence} It was [MASK] !").run()
    assert any("dropped" in w.value for w in at.warning)


def _wait_for_runs(status=("finished",), timeout=60):
    from ui.common import service
    end = time.time() + timeout
    while time.time() < end:
        runs = service()._core.store.list()
        if runs and all(r["status"] in status for r in runs if r["kind"] == "train"):
            return runs
        time.sleep(0.2)
    raise AssertionError(f"runs did not finish: {[r['status'] for r in service()._core.store.list()]}")


def test_train_a_run_and_find_it_in_the_history(app):
    at = app("app_pages/train.py")
    at.number_input(key="f_steps").set_value(5)
    at.number_input(key="f_shots").set_value(4)
    at.number_input(key="f_max_eval").set_value(20)
    at.button[0].click().run()  # the form's Train button
    assert not at.error, [e.value for e in at.error]
    runs = _wait_for_runs()
    assert runs[0]["result"]["train"]["steps"] == 5
    # the done job keeps no result or curves; the panel shows them from the store
    from ui.common import service
    job = service()._core.queue.wait(at.session_state["active_job"], 30)
    assert job.done and job.snapshot()["progress"]["losses"] == []
    at.run()
    assert any(m.label == "continuous accuracy" for m in at.metric), [m.label for m in at.metric]
    assert any(c.proto.spec and "loss" in c.proto.spec for c in at.get("plotly_chart"))
    at2 = app("app_pages/runs.py")
    assert any(runs[0]["id"] in df.value["id"].tolist() for df in at2.dataframe)
    assert any(m.label == "continuous accuracy" for m in at2.metric)
    # every accuracy comes with its interval, and the comparison with its paired test
    assert any("95% CI [" in c.value for c in at2.caption)
    assert any("McNemar" in i.value for i in at2.info)
    frame = next(df.value for df in at2.dataframe if "id" in df.value)
    assert {"continuous 95% CI", "p (McNemar)", "n"} <= set(frame.columns)


def test_stop_a_run(app):
    from ptuning_core.engine.experiment import RunSpec
    from ptuning_core.engine.train import TrainConfig
    from ui.common import service
    app("app_pages/train.py")  # the page is up; the run is submitted through the same service
    svc = service()
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer={"negative": ["terrible"],
                                                      "positive": ["great"]},
                   model=app.model, max_eval=10, train_cfg=TrainConfig(steps=400, batch_size=2))
    job = svc._core.queue.get(svc.runs.train("someone", spec).id)
    while job.snapshot()["progress"].get("step", 0) < 2:
        time.sleep(0.05)
    svc._core.queue.stop(job.id)
    job = svc._core.queue.wait(job.id, 30)
    assert job.status == "stopped"
    run = svc._core.store.get(job.run_id)
    assert run["status"] == "stopped" and run["result"]["train"]["steps"] < 400
    assert (svc._core.store.run_dir(job.run_id) / "prompt.safetensors").is_file()


def test_shared_link_restores_state(tiny_app):
    _, page = tiny_app
    at = page(query={"t": "{sentence} [P*3] It was [MASK]", "d": "sentiment", "steps": "17"})
    assert at.text_input(key="template_input").value == "{sentence} [P*3] It was [MASK]"
    assert at.session_state["steps"] == 17


@pytest.mark.parametrize("page", ["app_pages/compare.py", "app_pages/embeddings.py", "app_pages/fewshot.py",
                                  "app_pages/board.py", "app_pages/runs.py"])
def test_every_page_renders_empty(app, page):
    app(page)


def test_long_template_warns_about_the_context(app):
    """The tiny model's context is 128 tokens. A template that fits once the example's text
    is cut gets the one warning, its token strip and no error; one too long even with the
    text cut gets the error (no strip, no warning)."""
    at = app()
    at.text_input(key="template_input").set_value("{sentence} " + "the " * 110 + "[MASK]").run()
    assert not at.error, [e.value for e in at.error]
    assert [w.value for w in at.warning if "context" in w.value] == [
        "this example is longer than the model's context (128 tokens): its text is cut to fit"]
    assert "token-strip" in strip_html(at)
    at.text_input(key="template_input").set_value("{sentence} " + "the " * 140 + "[MASK]").run()
    # under the template, and again in the zero-shot preview (it cannot score the examples)
    why = "the template is longer than the model's context of 128 tokens even with the " \
          "example's text cut"
    assert [e.value for e in at.error] == [f"Template error: {why}",
                                           f"{why} (at character 1)"]
    assert not [w.value for w in at.warning if "context" in w.value]
    assert "token-strip" not in strip_html(at)
