"""The classroom in the pages (AppTest on a tiny model): an identity that survives a refresh
(a signed cookie; no more ``?sid=``), what a student's pages open on, runs shown read-only to
others, the queue with owners, the teacher's stop and board controls, the class pin.

A browser is simulated by the cookie its requests carry (``ui.classroom.request_token``)."""
import time

import pytest

from ptuning_core.engine.experiment import RunSpec
from ptuning_core.engine.train import TrainConfig

CODE = "owl-lantern-42"
TPL = "{sentence} [P*3] It was [MASK]"


@pytest.fixture
def room(monkeypatch, request):
    monkeypatch.setenv("PTUNING_TEACHER_CODE", CODE)
    monkeypatch.setenv("PTUNING_MAX_STEPS", "100000")
    svc, page = request.getfixturevalue("tiny_app")

    def open_as(token, path=None, **state):
        """A new browser session (a refresh or a new tab) of the browser holding ``token``."""
        monkeypatch.setattr("ui.classroom.request_token", lambda: token)
        return page(path, **state)
    open_as.model = page.model
    return svc, open_as


def cookie_written(at):
    return [h.proto.body for h in at.html if "document.cookie" in h.proto.body]


def long_run(svc, who, model, name, steps=100000):
    job = svc._core.queue.get(svc.runs.train(who, RunSpec(
        template=TPL, train="sentiment:train", eval="sentiment:test",
        verbalizer={"negative": ["terrible"], "positive": ["great"]}, model=model, name=name,
        shots=2, max_eval=6, train_cfg=TrainConfig(steps=steps, batch_size=2, eval_every=0))).id)
    return job


def wait_running(job, timeout=60):
    end = time.time() + timeout
    while job.status != "running" and time.time() < end:
        time.sleep(0.02)
    assert job.status == "running"


def buttons(at):
    return [b.label for b in at.button]


def test_a_new_browser_gets_a_signed_cookie_and_sid_links_adopt_nothing(room):
    svc, open_as = room
    other = svc._core.classroom.sign_in(None)[0]
    at = open_as(None, query={"sid": other})
    who = at.session_state["sid"]
    assert who != other  # ?sid= no longer adopts another session
    (script,) = cookie_written(at)
    token = at.session_state["_cookie_to_set"]
    assert svc._core.classroom.sign_in(token) == (who, None) and token in script
    # a refresh with that cookie is the same identity and writes no new cookie
    again = open_as(token)
    assert again.session_state["sid"] == who and not cookie_written(again)
    # a forged cookie (someone else's id, a made-up signature) is a new identity
    forged = open_as(f"{other}.{'0' * 32}")
    assert forged.session_state["sid"] not in (other, who) and cookie_written(forged)


def test_refresh_brings_back_name_template_upload_and_the_live_run(room):
    svc, open_as = room
    first = open_as(None)
    a, token = first.session_state["sid"], first.session_state["_cookie_to_set"]
    raw = b"sentence,y\n" + b"".join(f"the film was {['bad', 'great'][i % 2]} {i},"
                                     f"{['neg', 'pos'][i % 2]}\n".encode() for i in range(20))
    up = svc.data.save_upload(a, raw, "reviews.csv", ["sentence"], "y")
    # what the sidebar's upload button, the name field and Template Studio leave in the
    # session (AppTest runs app.py, which keeps them, only on a session's first run; the
    # browser test types them)
    mine = "{sentence} [P*2] so it was [MASK]"
    at = open_as(token, author="Ada", upload=up, _dataset_next=up["name"], template=mine,
                 template_input=mine, _tpl_from_link=True)
    assert svc._core.classroom.state(a)["template"] == mine
    job = long_run(svc, a, open_as.model, "Ada's run")
    wait_running(job)
    # refresh: a new session of the same browser
    at = open_as(token)
    ss = at.session_state
    assert ss["sid"] == a and ss["author"] == "Ada" and ss["dataset"] == "upload:reviews.csv"
    assert ss["upload"]["rows"] == up["rows"]
    assert at.text_input(key="template_input").value == "{sentence} [P*2] so it was [MASK]"
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert any(s.value == "Current run" for s in at.subheader)
    assert "Stop" in buttons(at)  # live, and its own
    assert any(job.run_id in c.value for c in at.caption)
    svc.runs.stop(job.id, a)
    job = svc._core.queue.wait(job.id, 30)
def test_others_see_a_run_read_only_and_the_whole_queue(room):
    svc, open_as = room
    a_at, b_at = open_as(None, author="Ada"), open_as(None, author="Bo")
    a, b = a_at.session_state["sid"], b_at.session_state["sid"]
    b_token = b_at.session_state["_cookie_to_set"]
    ja = long_run(svc, a, open_as.model, "Ada's run")
    wait_running(ja)
    jb = long_run(svc, b, open_as.model, "Bo's run", steps=3)
    at = open_as(b_token, "app_pages/runs.py", query={"run": ja.run_id})
    assert not any(x in buttons(at) for x in ("Rename", "Delete", "Stop"))
    assert any("belongs to Ada" in c.value for c in at.caption)
    assert any("Ada's run: you can watch, not stop it" in c.value for c in at.caption)
    at = open_as(b_token, "app_pages/train.py")
    queue = next(t.value for t in at.table if "owner" in t.value.columns)
    assert queue[["run", "owner", "state"]].values.tolist() == [
        ["Ada's run", "Ada", "running"], ["Bo's run", "Bo (you)", "queued"]]
    assert "Stop Bo's run (Bo)" in buttons(at) and "Stop Ada's run (Ada)" not in buttons(at)
    svc.runs.stop(ja.id, a)
    jb = svc._core.queue.wait(jb.id, 60)
def test_teacher_stops_a_students_run_and_takes_an_entry_off_the_board(room):
    svc, open_as = room
    a_at, b_at, t_at = (open_as(None, author=n) for n in ("Ada", "Bo", "Ms T"))
    a, b, t = (x.session_state["sid"] for x in (a_at, b_at, t_at))
    t_token = t_at.session_state["_cookie_to_set"]
    assert any(e.label == "Teacher" for e in t_at.expander)  # the code field (not yet teacher)
    svc._core.classroom.become_teacher(t, CODE)
    done = long_run(svc, a, open_as.model, "Ada's best", steps=2)
    done = svc._core.queue.wait(done.id, 60)
    svc.library.share(done.run_id, True, a)
    jb = long_run(svc, b, open_as.model, "Bo's run")
    wait_running(jb)
    at = open_as(t_token)  # (AppTest shows the sidebar on a session's first run only)
    assert not any(e.label == "Teacher" for e in at.expander)
    assert any("### Teacher" in m.value for m in at.markdown)
    assert {"Pin for the class", "Leave teacher mode"} <= set(buttons(at))
    at.switch_page("app_pages/train.py").run()
    next(x for x in at.button if x.label == "Stop Bo's run (Bo)").click().run()
    assert not at.exception
    jb = svc._core.queue.wait(jb.id, 30)
    assert jb.status == "stopped"
    at = open_as(t_token, "app_pages/board.py")
    assert at.dataframe[0].value["author"].tolist() == ["Ada"]
    next(x for x in at.button if x.label == "Remove from the board").click().run()
    assert not at.exception
    assert svc._core.store.list(shared_only=True) == []
    # a student sees no such control for someone else's entry
    svc.library.share(done.run_id, True, a)
    b_token = b_at.session_state["_cookie_to_set"]
    assert "Remove from the board" not in buttons(open_as(b_token, "app_pages/board.py"))


def test_students_studio_opens_on_the_pinned_template_and_dataset(room):
    svc, open_as = room
    t_at = open_as(None, author="Ms T")
    t = t_at.session_state["sid"]
    svc._core.classroom.become_teacher(t, CODE)
    raw = b"sentence,y\n" + b"".join(f"news {i},{['sports', 'world'][i % 2]}\n".encode()
                                     for i in range(20))
    up = svc.data.save_upload(t, raw, "news.csv", ["sentence"], "y")
    pinned = "{sentence} [P*2] Topic: [MASK]"
    svc.room.pin_class(t, pinned, up)
    s_at = open_as(None)
    token = s_at.session_state["_cookie_to_set"]
    assert s_at.session_state["dataset"] == "class:news.csv"
    assert s_at.text_input(key="template_input").value == pinned
    assert any("pinned by Ms T" in c.value for c in s_at.caption)
    # the student's own edit is theirs: a refresh does not put the pin back over it
    mine = "{sentence} [P*4] Topic: [MASK]"
    open_as(token, template=mine, template_input=mine, _tpl_from_link=True)
    again = open_as(token)
    assert again.text_input(key="template_input").value == mine
    assert again.session_state["dataset"] == "class:news.csv"
    # a new pin is opened once more
    svc.room.pin_class(t, pinned, up)
    assert open_as(token).text_input(key="template_input").value == pinned
