"""Issue 24: one definition of every range; link values out of range get one line, never a
widget exception; seeds checked in one place; the Train form's numbers are in the URL."""
import pytest

from ptuning_core import config as C
from ptuning_core.engine.train import ConfigError


def test_ranges_parse_check_and_clamp():
    assert C.parse("shots", "16") == (16, None)
    for raw in ("2000", "-4", "abc", "", "1e400", "nan", "3.5", "9" * 60):
        v, err = C.parse("shots", raw)
        assert v is None and "between 0 and 1000" in err and "invalid literal" not in err
    assert C.parse("seed", str(2**32 - 1)) == (2**32 - 1, None)
    assert C.parse("seed", str(2**32))[0] is None
    assert C.parse("seed", "-1")[0] is None
    assert C.parse("lr", "5")[0] is None and C.parse("lr", "0.005") == (0.005, None)
    assert C.parse("steps", "500", hi=200)[1] == "steps must be between 1 and 200, got 500"
    assert C.clamp("shots", 2000) == 1000 and C.clamp("seed", -1) == 0
    for bad in (-5, 2**32, 99999999999999999999, 1.5, True, float("nan")):
        with pytest.raises(ConfigError, match="seed must be between 0 and 4294967295"):
            C.check_seed(bad)
    assert C.parse_list("k", "4, 8,16") == [4, 8, 16]
    for bad in ("abc", "4,x", "", "0", "-4", "4,,2000"):
        with pytest.raises(ConfigError) as e:
            C.parse_list("k", bad)
        assert "invalid literal" not in str(e.value) and "base 10" not in str(e.value)


@pytest.mark.parametrize("q,word", [({"k": "2000"}, "k=2000"), ({"k": "-4"}, "k=-4"),
                                    ({"seed": "-1"}, "seed=-1"), ({"lr": "5"}, "lr=5"),
                                    ({"steps": "abc"}, "steps=abc")])
def test_train_link_out_of_range_gets_one_line_and_the_form(tiny_app, q, word):
    _, page = tiny_app
    at = page("app_pages/train.py", query=q)
    assert not at.exception
    assert any(word in w.value and "between" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    assert any(b.label == "Train" for b in at.button)  # the form is there
    at.run()  # and stays usable on the next run of the page
    assert not at.exception


def test_train_link_in_range_fills_the_form_and_the_url_follows_the_form(tiny_app):
    _, page = tiny_app
    at = page("app_pages/train.py", query={"steps": "7", "lr": "0.005", "seed": "42", "k": "8"})
    assert at.number_input(key="f_steps").value == 7
    assert at.number_input(key="f_seed").value == 42
    assert at.number_input(key="f_shots").value == 8
    assert abs(at.number_input(key="f_lr").value - 0.005) < 1e-9
    at.number_input(key="f_seed").set_value(99).run()
    at.number_input(key="f_steps").set_value(25).run()
    assert str(at.query_params["seed"]) == "99" and str(at.query_params["steps"]) == "25"
    share = [c.value for c in at.code if "/train?" in c.value][-1]
    assert "seed=99" in share and "steps=25" in share and "k=8" in share


def test_seeds_are_checked_at_the_door(tiny_app):
    from ptuning_core.api import ExperimentRequest, RunSpec, TrainConfig
    svc, page = tiny_app
    for seed in (-5, 2**32, 99999999999999999999):
        with pytest.raises(ConfigError, match="seed must be between"):
            svc.runs.experiment("me", ExperimentRequest("E1", model=page.model, seeds=[seed]))
        spec = RunSpec(template="{sentence} It was [MASK]", train="sst2:train", eval="sst2:test",
                       verbalizer={"negative": ["bad"], "positive": ["good"]}, model=page.model,
                       label_field="label", train_cfg=TrainConfig(seed=seed))
        with pytest.raises(ConfigError, match="seed must be between"):
            svc.runs.train("me", spec)


def test_experiments_page_refuses_bad_seeds_in_one_line(tiny_app):
    _, page = tiny_app
    at = page("app_pages/experiments.py")
    for txt in ("99999999999999999999", "-5", "abc"):
        at.text_input(key="exp_seeds").set_value(txt).run()
        next(b for b in at.button if b.label.startswith("Run E1")).click().run()
        assert not at.exception
        assert any("seed must be between 0 and 4294967295" in e.value for e in at.error), \
            [e.value for e in at.error]
    assert "experiment_job" not in at.session_state  # nothing was queued


def test_a_failed_job_shows_once_and_does_not_follow_the_identity(tiny_app, monkeypatch):
    from ptuning_core.app import snapshots
    svc, page = tiny_app
    first = page("app_pages/experiments.py")
    who, token = first.session_state["sid"], first.session_state["_cookie_to_set"]

    def boom(job):
        raise ValueError("Overflow when unpacking long long\nsecond line")
    from ptuning_core.api import EXPERIMENT_KIND
    job = svc._core.queue.get(svc.runs.submit(who, "E1 test", EXPERIMENT_KIND, boom).id)
    job = svc._core.queue.wait(job.id, 30)
    assert job.status == "failed" and job.error == "ValueError: Overflow when unpacking long long"
    monkeypatch.setattr("ui.classroom.request_token", lambda: token)
    soon = page("app_pages/experiments.py")  # a refresh right after: the reason, once, one line
    assert soon.session_state["sid"] == who
    assert [e.value for e in soon.error] == [job.error]
    monkeypatch.setattr(snapshots, "FAILURE_SHOWN_S", -1)  # a new session, later
    later = page("app_pages/experiments.py")
    assert not later.error, [e.value for e in later.error]


def test_a_link_to_an_unknown_run_says_so_and_the_open_run_is_in_the_url(tiny_app):
    svc, page = tiny_app
    first = page()
    who = first.session_state["sid"]
    a = svc._core.store.create("run a", {}, who, status="cancelled")
    b = svc._core.store.create("run b", {}, who, status="cancelled")
    at = page("app_pages/runs.py", query={"run": "deadbeef0000"})
    assert any("no run `deadbeef0000`" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    shown = str(at.query_params["run"])
    assert shown in (a, b)
    other = a if shown == b else b
    at.selectbox[0].set_value(other).run()  # picking a run clears the line, the URL follows
    assert not any("deadbeef0000" in w.value for w in at.warning)
    assert str(at.query_params["run"]) == other
    at = page("app_pages/runs.py", query={"run": a})  # a link to a run opens that run, no warning
    assert str(at.query_params["run"]) == a and not any("no run" in w.value for w in at.warning)


def test_a_deep_link_on_a_fresh_server_runs_the_entry_point():
    """Streamlit treats a ``pages/`` folder beside the entry point as a v1 multipage app until
    st.navigation first runs: a deep link as the first request on a fresh server ran the page
    script alone (no sidebar, no identity; streamlit#9624). The pages live in app_pages/."""
    from pathlib import Path

    from streamlit.runtime.pages_manager import PagesManager
    root = Path(__file__).resolve().parent.parent
    assert not (root / "pages").exists()
    old = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None  # as in a freshly started server
        PagesManager(str(root / "app.py"))
        assert PagesManager.uses_pages_directory is False
    finally:
        PagesManager.uses_pages_directory = old
    nav = (root / "app.py").read_text()
    assert all(f'"app_pages/{p.stem}.py"' in nav for p in (root / "app_pages").glob("*.py"))


def test_a_very_long_model_name_from_a_link_is_one_line_not_an_os_error(tiny_app):
    from ptuning_core.api import ModelLoadError
    svc, page = tiny_app
    with pytest.raises(ModelLoadError, match="not on this server's list"):
        svc._core.settings.check_model("P" * 5000)  # os.stat raised "File name too long" here
    at = page("app_pages/board.py", query={"m": "P" * 5000})
    assert not at.exception


def test_buttons_that_cannot_act_say_why(tiny_app):
    svc, page = tiny_app
    at = page("app_pages/compare.py")
    next(m for m in at.multiselect if m.label == "Variants").set_value([])
    next(b for b in at.button if b.label == "Compare").click().run()
    assert any("choose at least one variant" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert "compare_job" not in at.session_state
    at = page("app_pages/fewshot.py")
    next(m for m in at.multiselect if m.label == "Methods").set_value([])
    next(b for b in at.button if b.label == "Run sweep").click().run()
    assert any("Choose at least one method" in e.value for e in at.error)
    at = page("app_pages/fewshot.py")
    next(t for t in at.text_input if t.label.startswith("k values")).set_value("4,abc")
    next(b for b in at.button if b.label == "Run sweep").click().run()
    errs = [e.value for e in at.error]
    assert any("k values:" in e and "between 1 and 1000" in e for e in errs), errs
    assert not any("invalid literal" in e for e in errs)


def test_a_significant_verdict_gives_the_better_ones_lead_with_a_plus_sign():
    from ptuning_core.stats import mcnemar, verdict
    a = [True] * 40 + [True] * 10
    b = [True] * 40 + [False] * 10  # a right on 10 where b is wrong: a is better by 20 points
    text = verdict("discrete", 1.0, "discretized", 0.8, mcnemar(a, b))
    assert text.startswith("discrete is significantly better than discretized (+20.0 points")


def test_confusion_matrix_puts_the_first_class_on_top():
    from ui.common import confusion_figure
    fig = confusion_figure([[5, 1], [2, 6]], ["negative", "positive"], "t")
    assert fig.layout.yaxis.autorange == "reversed"


def test_current_run_is_the_running_one_not_the_next_queued(monkeypatch, request):
    monkeypatch.setenv("PTUNING_MAX_STEPS", "100000")
    tiny_app = request.getfixturevalue("tiny_app")
    import time

    from ptuning_core.api import RunSpec, TrainConfig
    svc, page = tiny_app
    first = page()
    who, token = first.session_state["sid"], first.session_state["_cookie_to_set"]

    def spec(name):
        return RunSpec(template="{sentence} [P*3] It was [MASK]", train="sentiment:train",
                       eval="sentiment:test", verbalizer={"negative": ["terrible"],
                                                          "positive": ["great"]},
                       model=page.model, name=name, shots=2, max_eval=6,
                       train_cfg=TrainConfig(steps=100000, batch_size=2))
    a = svc._core.queue.get(svc.runs.train(who, spec("a")).id)
    b = svc._core.queue.get(svc.runs.train(who, spec("b")).id)
    try:
        end = time.time() + 60
        while a.status != "running" and time.time() < end:
            time.sleep(0.1)
        assert a.status == "running" and b.status == "queued"
        monkeypatch.setattr("ui.classroom.request_token", lambda: token)
        at = page("app_pages/train.py", active_job=b.id)  # this session queued b last
        shown = [c.value for c in at.caption if "Run id" in c.value]
        assert shown and a.run_id in shown[0] and b.run_id not in shown[0], shown
    finally:
        for j in (b, a):
            svc.runs.stop(j.id, who)


def test_try_it_with_a_too_long_text_names_the_text_not_the_template(tiny_app):
    svc, _ = tiny_app
    with pytest.raises(ConfigError, match="the text of 'sentence' is 20001 characters long; "
                                          "text length .characters. must be between 1 and 20000"):
        svc.library.predict("deadbeef0000", {"sentence": "a" * 20001})


def test_a_small_upload_at_the_default_k_suggests_a_k_that_works():
    from ptuning_core.api import DataError
    from ptuning_core.data.bundled import sample_k_shot
    rows = [{"sentence": f"s{i}", "label": "pos" if i % 2 else "neg"} for i in range(40)]
    with pytest.raises(DataError, match=r"use k = 10 or less, or train on all examples"):
        sample_k_shot(rows, 16, 13, "label")
    train, dev = sample_k_shot(rows, 10, 13, "label")  # the suggested k works
    assert len(train) == 20 and len(dev) == 20


def test_fewshot_summary_names_its_seed_count_seeds_not_n():
    from ptuning_core.api import SweepPoint
    row = SweepPoint("ptuning", 4, 0.7, 0.05, 3).as_row()
    assert row["seeds"] == 3 and "n" not in row


def test_the_learned_label_toggle_survives_a_refresh(tiny_app, monkeypatch):
    _, page = tiny_app
    first = page()
    token = first.session_state["_cookie_to_set"]
    next(t for t in first.toggle if t.label == "Learned label tokens").set_value(True).run()
    assert first.session_state["label_tokens"] == "learned"
    monkeypatch.setattr("ui.classroom.request_token", lambda: token)
    again = page()  # a refresh: a new session of the same browser
    assert again.session_state["label_tokens"] == "learned"
    assert next(t for t in again.toggle if t.label == "Learned label tokens").value is True


def test_the_board_shows_no_experiment_title_in_its_template_column(tiny_app):
    svc, page = tiny_app
    rid = svc._core.store.create("E1 Continuous prompts beat the discrete one", {
        "experiment": "E1", "template": "Continuous prompts beat the discrete one",
        "train": "sentiment"}, "someone", kind="experiment", status="running")
    svc._core.store.finish(rid, "finished", {"continuous": {"template": "P-tuning (k=16)",
                                                      "accuracy": 0.8, "ci95": [0.7, 0.9],
                                                      "n": 100}})
    svc._core.store.share(rid, True, "Ada")
    df = page("app_pages/board.py").dataframe[0].value
    assert df["template"].tolist() == ["experiment: P-tuning (k=16)"]
    assert df["name"].tolist() == ["E1 Continuous prompts beat the discrete one"]


def test_compare_progress_line_shows_the_running_variant_s_numbers_only():
    from ptuning_core.executors.jobs import Job
    from ui.common import progress_line
    job = Job("j", "me", "cpu", "comparison", None, kind="compare")
    job.event({"type": "variant", "name": "P-tuning (lstm)", "index": 0, "total": 2})
    job.event({"type": "phase", "phase": "train"})
    job.event({"type": "step", "step": 60, "steps": 60, "loss": 0.25, "seconds": 30.0})
    assert "step 60/60" in progress_line(job.snapshot()["progress"])[1]
    job.event({"type": "variant", "name": "prompt tuning (none)", "index": 1, "total": 2})
    frac, line = progress_line(job.snapshot()["progress"])
    assert frac == 0.0 and "60" not in line and "0.25" not in line, line  # not the last one's
