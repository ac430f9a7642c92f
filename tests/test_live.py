"""The queue's estimates and the shared snapshot pages poll (ptuning_core/executors/live.py, Service.live):
the ETA arithmetic with values that could go wrong, measured step times from finished runs, the
snapshot's versioning, and a waiting run's position and estimated start on the Train page."""
import dataclasses
import time

import pytest

from ptuning_core.executors.live import StepTimes, Work, remaining_seconds, run_path, start_times
from ptuning_core.template import parse


# ---- the arithmetic -----------------------------------------------------------------------------
def test_start_times_add_the_work_ahead_one_slot():
    # one job running with 30 s left; three queued of 10, 20, 5 s
    assert start_times([30.0], [10.0, 20.0, 5.0]) == [30.0, 40.0, 60.0]
    # nothing running: the first starts now
    assert start_times([], [10.0, 20.0]) == [0.0, 10.0]


def test_start_times_with_two_slots_take_the_slot_free_first():
    # slots end at 30 and 5: the first queued job takes the one free at 5 (not 30)
    assert start_times([30.0, 5.0], [10.0, 100.0, 1.0], slots=2) == [5.0, 15.0, 30.0]
    # one slot idle: the first starts now, the second when the shorter one is free
    assert start_times([8.0], [3.0, 4.0], slots=2) == [0.0, 3.0]


def test_an_unknown_length_makes_the_starts_behind_it_unknown_not_zero():
    assert start_times([None], [10.0]) == [None]
    assert start_times([30.0], [None, 10.0]) == [30.0, None]
    # two slots, one free now: the unknown job ahead does not hide that the slot is free
    assert start_times([None], [10.0, 5.0], slots=2) == [0.0, None]


def test_remaining_seconds_of_a_queued_and_a_running_run():
    t = StepTimes()
    w = Work("m", "plain", steps=60, batch=8)
    assert remaining_seconds(t, "train", w, "queued") is None  # nothing measured yet
    t.record_run("m", "plain", batch=8, steps=10, train_s=20.0, total_s=30.0)  # 2 s/step, 10 s
    assert remaining_seconds(t, "train", w, "queued") == pytest.approx(60 * 2.0 + 10.0)
    # batch 16 takes twice as long per step (per row measure)
    assert remaining_seconds(t, "train", Work("m", "plain", 60, 16), "queued") == \
        pytest.approx(60 * 4.0 + 10.0)
    # running, 20 steps in 60 s (its own rate, 3 s/step), 4 s outside steps so far of the 10
    assert remaining_seconds(t, "train", w, "running", step=20, train_s=60.0, elapsed_s=64.0) \
        == pytest.approx(40 * 3.0 + 6.0)
    # past its usual time outside the steps: never negative
    assert remaining_seconds(t, "train", w, "running", step=60, train_s=120.0,
                             elapsed_s=200.0) == 0.0


def test_step_times_mix_new_measures_and_borrow_the_other_path():
    t = StepTimes(weight=0.5)
    t.record_run("m", "fast", 8, 10, 8.0, 8.0)  # 0.1 s per row-step
    t.record_run("m", "fast", 8, 10, 24.0, 24.0)  # 0.3
    assert t.step_seconds("m", "fast", 1) == pytest.approx(0.2)
    assert t.step_seconds("m", "plain", 1) == pytest.approx(0.2)  # borrowed: better than none
    assert t.step_seconds("other", "fast", 1) is None
    t.record_run("m", "fast", 8, 0, 0.0, 5.0)  # stopped before a step: no measure
    assert t.step_seconds("m", "fast", 1) == pytest.approx(0.2)
    t.record_job("compare", 100.0)
    assert remaining_seconds(t, "compare", None, "queued") == 100.0
    assert remaining_seconds(t, "compare", None, "running", elapsed_s=30.0) == 70.0
    assert remaining_seconds(t, "sweep", None, "queued") is None


def test_run_path_follows_where_the_pseudo_tokens_are():
    assert run_path(parse("[P*4] {sentence} It was [MASK]"), "causal") == "plain"
    assert run_path(parse("{sentence} [P*4] It was [MASK]"), "causal") == "fast"
    assert run_path(parse("{sentence} [P*4] It was [MASK]"), "masked") == "plain"


# ---- the service: measured from runs, one snapshot for every page -----------------------------
VERB = {"negative": ["terrible"], "positive": ["great"]}


def spec(model, steps, name):
    from ptuning_core.api import RunSpec, TrainConfig
    return RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer=VERB, model=model, name=name, shots=2,
                   max_eval=4, train_cfg=TrainConfig(steps=steps, batch_size=2, eval_every=0))


@pytest.fixture
def app(monkeypatch, request):
    monkeypatch.setenv("PTUNING_MAX_STEPS", "100000")
    return request.getfixturevalue("tiny_app")


def wait_for(cond, timeout=60):
    end = time.time() + timeout
    while not cond() and time.time() < end:
        time.sleep(0.02)
    assert cond()


def test_a_waiting_run_gets_a_start_from_measured_step_times(app):
    svc, page = app
    model = page.model
    first = svc._core.queue.get(svc.runs.train("ann", spec(model, 3, "warm")).id)
    first = svc._core.queue.wait(first.id, 60)
    assert first.status == "finished"
    per_step = svc._core.queue.times.step_seconds(model, "fast", 2)
    assert per_step is not None and per_step > 0  # measured from the finished run
    long = svc._core.queue.get(svc.runs.train("ann", spec(model, 10 ** 5, "long")).id)
    wait_for(lambda: long.status == "running" and (long.progress.get("step") or 0) >= 2)
    waiting = svc._core.queue.get(svc.runs.train("bob", spec(model, 50, "waits")).id)
    snap = svc.runs.live()
    v = snap.get(waiting.id)
    assert v.position == 1 and v.status == "queued" and v.owner_id == "bob"
    run = snap.get(long.id)
    # it starts when the long run ends: its remaining steps at its own rate
    assert v.start_in_s == pytest.approx(run.end_in_s)
    assert v.start_in_s > (10 ** 5 - run.step - 50) * (run.seconds / run.step)
    assert v.end_in_s > v.start_in_s
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.position = 3
    rows = svc.room.queue_rows("bob")
    assert [(r["run"], r["position"], r["yours"]) for r in rows] == \
        [("long", None, False), ("waits", 1, True)]
    assert rows[1]["start_in_s"] == pytest.approx(v.start_in_s, rel=0.2)
    svc.runs.stop(long.id, "ann")
    waiting = svc._core.queue.wait(waiting.id, 60)
def test_an_unchanged_queue_is_the_same_snapshot_and_a_change_is_seen(app):
    svc, page = app
    a = svc.runs.live()
    assert svc.runs.live() is a  # nothing changed: nothing recomputed
    job = svc._core.queue.get(svc.runs.train("ann", spec(page.model, 2, "x")).id)
    b = svc.runs.live()  # a job added is seen at once, not after the interval
    assert b is not a and b.version > a.version and b.get(job.id) is not None
    job = svc._core.queue.wait(job.id, 60)
    c = svc.runs.live()
    assert c.get(job.id).done and c.get(job.id).status == "finished"
    assert c.get(job.id).losses  # a done job's curves, read from the store once
    assert svc.runs.live() is c


# ---- the page ---------------------------------------------------------------------------------
def test_the_train_page_shows_a_waiting_run_its_position_and_estimated_start(app,
                                                                            monkeypatch):
    svc, page = app
    monkeypatch.setattr("ui.classroom.request_token", lambda: None)
    at = page()
    me = at.session_state["sid"]
    warm = svc._core.queue.get(svc.runs.train("other", spec(page.model, 2, "warm")).id)  # a measure to estimate from
    warm = svc._core.queue.wait(warm.id, 60)
    blocker = svc._core.queue.get(svc.runs.train("other", spec(page.model, 10 ** 5, "blocker")).id)
    wait_for(lambda: (blocker.progress.get("step") or 0) >= 1)
    mine = svc._core.queue.get(svc.runs.train(me, spec(page.model, 20, "mine")).id)
    token = at.session_state["_cookie_to_set"]
    monkeypatch.setattr("ui.classroom.request_token", lambda: token)
    at = page("app_pages/train.py")
    assert at.session_state["sid"] == me
    lines = [i.value for i in at.info]
    assert any("Waiting in the queue: position 1, estimated start in" in x for x in lines), lines
    queue = next(t.value for t in at.table if "owner" in t.value.columns)
    assert queue["run"].tolist() == ["blocker", "mine"]
    assert queue["starts"].tolist()[0] == "" and queue["starts"].tolist()[1].startswith("in ")
    svc.runs.stop(blocker.id, "other")
    mine = svc._core.queue.wait(mine.id, 60)
def view(**kw):
    from ptuning_core.api import JobView
    base = dict(id="j", label="r", kind="train", owner_id="a", owner="Ada", status="running",
                stopping=False, position=0, step=0, steps=60, loss=None, seconds=0.0,
                phase="train", phase_done=None, phase_total=None, losses=(), dev=(), error=None,
                run_id=None, start_in_s=None, end_in_s=None, at=time.time(), rev=1)
    return JobView(**{**base, **kw})


def test_panels_poll_at_the_jobs_pace_and_not_once_it_is_done():
    from ui.common import job_interval
    assert job_interval(None) is None
    assert job_interval(view(status="finished")) is None
    assert job_interval(view(status="stopped", stopping=True)) is None
    assert job_interval(view(step=10, seconds=25.0)) == 2.5  # once per training step
    assert job_interval(view(step=10, seconds=100.0)) == 5.0  # at most 5 s apart
    assert job_interval(view(step=10, seconds=1.0)) == 1.0  # at least 1 s apart
    assert job_interval(view(status="queued", position=3, start_in_s=600.0)) == 10.0
    assert job_interval(view(status="queued", position=1, start_in_s=5.0)) == 2.0
    assert job_interval(view(status="queued", position=1, start_in_s=None)) == 3.0


def test_the_queue_list_polls_only_for_someone_with_a_live_job(app):
    from ui.common import queue_polls
    svc, page = app
    assert not queue_polls(svc, "ann")  # empty queue: nothing to refresh
    job = svc._core.queue.get(svc.runs.train("ann", spec(page.model, 10 ** 5, "long")).id)
    assert queue_polls(svc, "ann") and not queue_polls(svc, "bob")
    svc.runs.stop(job.id, "ann")
    job = svc._core.queue.wait(job.id, 60)
    assert not queue_polls(svc, "ann")
