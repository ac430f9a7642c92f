"""The classroom rules in the core, without a browser: signed identities, per-identity state,
ownership of runs, comparisons, sweeps, jobs and uploads (checked by the service, whatever the
page), the teacher, the class pin and the queue as everyone sees it."""
import os
import stat
import time

import pytest

from ptuning_core.lm import registry
from ptuning_core.access import PermissionDenied
from ptuning_core.store.classroom import Classroom
from ptuning_core.data.bundled import DataError
from ptuning_core.engine.experiment import USER_ERRORS, RunSpec
from ptuning_core.store.identity import Identities
from ptuning_core.store.profiles import ProfileStore
from ptuning_core.service import Service, Settings
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import TrainConfig
from tiny import tiny_causal

VERB = {"negative": ["terrible"], "positive": ["great"]}
CODE = "owl-lantern-42"


def make_service(tmp_path, code=CODE, **kw):
    bb = tiny_causal()
    bb.name = "tiny-class"
    registry.put(bb)
    return Service(Settings(allowed_models=["tiny-class"], max_steps=10 ** 5, teacher_code=code,
                            **kw), RunStore(tmp_path / "runs"))


def spec(steps=3, name="", **kw):
    return RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer=VERB, model="tiny-class", shots=2,
                   max_eval=6, name=name, train_cfg=TrainConfig(steps=steps, batch_size=2,
                                                                eval_every=0, snapshot_every=0),
                   **kw)


def wait_running(job, timeout=60):
    end = time.time() + timeout
    while job.status != "running" and time.time() < end:
        time.sleep(0.02)
    assert job.status == "running"


@pytest.fixture
def cls(tmp_path):
    svc = make_service(tmp_path)
    a, b, t = (svc._core.classroom.sign_in(None)[0] for _ in range(3))
    svc._core.classroom.set_name(a, "Ada")
    svc._core.classroom.set_name(b, "Bo")
    svc._core.classroom.become_teacher(t, CODE)
    yield svc, a, b, t
    svc._core.queue.close()


# ---- identities ------------------------------------------------------------------------------
def test_identities_are_signed_and_cannot_be_forged(tmp_path):
    ids = Identities(tmp_path / "k")
    a, tok_a = ids.issue()
    b, tok_b = ids.issue()
    assert a != b and ids.verify(tok_a) == a and ids.verify(tok_b) == b
    sig_a, sig_b = tok_a.split(".")[1], tok_b.split(".")[1]
    flipped = tok_a[:-1] + ("0" if tok_a[-1] != "0" else "1")
    for forged in (flipped, f"{b}.{sig_a}", f"{a}.{sig_b}", a, f"{a}.", "", None, 42,
                   tok_a + "0", "x" * 5000, f"{a.upper()}.{sig_a}", f"../{a}.{sig_a}"):
        assert ids.verify(forged) is None, forged
    # the key is made once, readable by the server only, and kept: tokens stay valid
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert Identities(tmp_path / "k").verify(tok_a) == a
    assert Identities(tmp_path / "other").verify(tok_a) is None  # another server's key


def test_sign_in_keeps_a_valid_identity_and_replaces_a_bad_one(tmp_path):
    room = Classroom()
    who, token = room.sign_in(None)
    assert token and room.sign_in(token) == (who, None)  # refresh / new tab: same identity
    other, new_token = room.sign_in(token[:-2] + "00")
    assert other != who and new_token and room.sign_in(new_token) == (other, None)


def test_working_state_and_name_survive_a_new_process(tmp_path):
    room = Classroom()
    who, _ = room.sign_in(None)
    assert room.set_name(who, "  Ada\n\x07 Lovelace  " + "x" * 80).startswith("Ada Lovelace")
    assert len(room.name(who)) == 40
    room.save_state(who, {"template": "{sentence} [P] [MASK]", "dataset": "topics",
                          "secret": "not kept", "upload": {"name": "upload:a.csv"}})
    again = Classroom(profiles=ProfileStore(room.profiles.path))
    assert again.state(who) == {"template": "{sentence} [P] [MASK]", "dataset": "topics",
                                "upload": {"name": "upload:a.csv"}}
    assert again.name(who).startswith("Ada Lovelace")
    assert not room.save_state(who, {"template": "x" * 100_000})  # too large: not written
    assert again.state(who)["dataset"] == "topics"  # the last good state is kept


def test_user_errors_include_permission_denied():
    assert issubclass(PermissionDenied, USER_ERRORS)


# ---- ownership -------------------------------------------------------------------------------
def test_only_the_owner_changes_a_run(cls):
    svc, a, b, t = cls
    job = svc._core.queue.get(svc.runs.train(a, spec(steps=10 ** 5, name="ada's run")).id)
    rid = job.run_id
    wait_running(job)
    assert svc._core.store.get(rid)["owner"] == a and job.session == a
    for call in (lambda: svc.runs.stop_run(rid, b), lambda: svc.runs.stop(job.id, b),
                 lambda: svc.library.rename(rid, "mine now", b),
                 lambda: svc.library.share(rid, True, b), lambda: svc.library.delete(rid, b),
                 lambda: svc.library.remove_from_board(rid, b)):
        with pytest.raises(PermissionDenied, match="only the person who started this run"):
            call()
    run = svc._core.store.get(rid)
    assert job.status == "running" and not job.stop.is_set()
    assert run["name"] == "ada's run" and not run["shared"]
    # the owner may; the board shows the owner's display name, not what a page sends
    svc.library.rename(rid, "Ada's best", a)
    svc.library.share(rid, True, a)
    run = svc._core.store.get(rid)
    assert run["name"] == "Ada's best" and run["shared"] and run["author"] == "Ada"
    with pytest.raises(PermissionDenied):
        svc.library.share(rid, False, b)  # B cannot unshare it either
    assert svc._core.store.get(rid)["shared"]
    with pytest.raises(Exception, match="stopping"):
        svc.library.delete(rid, a)  # running: it is stopped first, deleted once it has stopped
    job = svc._core.queue.wait(job.id, 30)
    assert job.status == "stopped" and svc._core.store.get(rid)["status"] == "stopped"
    svc.library.delete(rid, a)
    assert svc._core.store.get(rid) is None


def test_teacher_stops_any_run_and_removes_any_board_entry(cls):
    svc, a, b, t = cls
    assert svc.room.is_teacher(t) and not svc.room.is_teacher(a) and not svc.room.is_teacher(b)
    done = svc._core.queue.get(svc.runs.train(a, spec(steps=2)).id)
    done = svc._core.queue.wait(done.id, 60)
    svc.library.share(done.run_id, True, a)
    long_b = svc._core.queue.get(svc.runs.train(b, spec(steps=10 ** 5)).id)
    wait_running(long_b)
    queued_a = svc._core.queue.get(svc.runs.train(a, spec()).id)
    svc.runs.stop(queued_a.id, t)  # a queued one is cancelled
    assert queued_a.status == "cancelled"
    svc.runs.stop_run(long_b.run_id, t)
    long_b = svc._core.queue.wait(long_b.id, 30)
    assert long_b.status == "stopped" and svc._core.store.get(long_b.run_id)["status"] == "stopped"
    svc.library.remove_from_board(done.run_id, t)
    assert not svc._core.store.get(done.run_id)["shared"]
    svc.library.rename(done.run_id, "renamed by the teacher", t)
    assert svc._core.store.list(shared_only=True) == []


def test_teacher_code_rules(tmp_path):
    svc = make_service(tmp_path)
    s = svc._core.classroom.sign_in(None)[0]
    with pytest.raises(PermissionDenied, match="not the teacher code"):
        svc._core.classroom.become_teacher(s, CODE + "x")
    assert not svc.room.is_teacher(s)
    svc._core.classroom.become_teacher(s, f"  {CODE} ")
    assert svc.room.is_teacher(s)
    # kept with the identity: a new server process on the same home still knows
    assert make_service(tmp_path).room.is_teacher(s)
    # a new code (or none) ends the old teachers' mode
    assert not make_service(tmp_path, code="another-code").room.is_teacher(s)
    off = make_service(tmp_path, code="")
    assert not off.room.is_teacher(s) and not off._core.classroom.teacher_mode
    with pytest.raises(PermissionDenied, match="no teacher mode"):
        off._core.classroom.become_teacher(s, "")
    svc._core.classroom.leave_teacher(s)
    assert not svc.room.is_teacher(s)
    # guessing is limited
    g = svc._core.classroom.sign_in(None)[0]
    for i in range(Classroom.MAX_TRIES):
        with pytest.raises(PermissionDenied, match="not the teacher code"):
            svc._core.classroom.become_teacher(g, f"guess{i}")
    with pytest.raises(PermissionDenied, match="too many"):
        svc._core.classroom.become_teacher(g, CODE)
    assert not svc.room.is_teacher(g)


def test_queue_as_the_class_sees_it(cls):
    svc, a, b, t = cls
    ja = svc._core.queue.get(svc.runs.train(a, spec(steps=10 ** 5, name="A's")).id)
    wait_running(ja)
    jb = svc._core.queue.get(svc.runs.train(b, spec(name="B's")).id)
    rows_a, rows_b, rows_t = (svc.room.queue_rows(w) for w in (a, b, t))
    for rows in (rows_a, rows_b, rows_t):
        assert [(r["run"], r["owner"], r["state"], r["position"]) for r in rows] == \
            [("A's", "Ada", "running", None), ("B's", "Bo", "queued", 1)]
    assert [(r["yours"], r["can_stop"]) for r in rows_a] == [(True, True), (False, False)]
    assert [(r["yours"], r["can_stop"]) for r in rows_b] == [(False, False), (True, True)]
    assert [(r["yours"], r["can_stop"]) for r in rows_t] == [(False, True), (False, True)]
    assert svc.runs.current(a).id == ja.id and svc.runs.current(b).id == jb.id
    svc.runs.stop(ja.id, a)
    jb = svc._core.queue.wait(jb.id, 60)
    assert svc.room.queue_rows(a) == []


def test_uploads_belong_to_their_owner_and_a_pinned_one_to_the_class(cls):
    svc, a, b, t = cls
    raw = b"text,y\n" + b"".join(f"the movie {i},{['bad', 'good'][i % 2]}\n".encode()
                                 for i in range(20))
    up = svc.data.save_upload(a, raw, "../../reviews.csv", ["text"], "y")
    assert up["name"] == "upload:reviews.csv" and f"/uploads/{a}/" in up["train_ref"]
    meta = {k: v for k, v in up.items() if k not in ("rows", "warnings")}
    assert svc.data.open_upload(a, meta)["rows"] == up["rows"]  # after a refresh
    with pytest.raises(PermissionDenied, match="belongs to someone else"):
        svc.data.open_upload(b, meta)
    theirs = RunSpec(template="{text} [P] It was [MASK]", train=up["train_ref"],
                     eval=up["eval_ref"], verbalizer={"bad": ["bad"], "good": ["good"]},
                     model="tiny-class", label_field="y", train_cfg=TrainConfig(steps=1))
    with pytest.raises(PermissionDenied):
        svc.runs.train(b, theirs)
    assert svc._core.store.list() == []
    with pytest.raises(DataError, match="uploaded through the app"):
        svc.data.check_ref(str(svc._core.store.root / "runs.sqlite"), a)
    # students cannot pin; the teacher pins a template and A's upload for the class
    with pytest.raises(PermissionDenied, match="only the teacher"):
        svc.room.pin_class(a, "{text} [P] It was [MASK]", up)
    assert svc.room.class_pin() is None
    from ptuning_core.template import TemplateError
    with pytest.raises(TemplateError):
        svc.room.pin_class(t, "{sentence} [P] It was [MASK]", up)  # not a field of this data
    pin = svc.room.pin_class(t, "{text} [P*2] It was [MASK]", up)
    assert svc.room.class_pin() == pin and pin["dataset"] == "class:reviews.csv"
    ctx = svc.room.class_data(b)  # every student reads the class copy
    assert ctx["rows"] == up["rows"] and "/uploads/class/" in ctx["train_ref"]
    assert ctx["name"] == "class:reviews.csv"
    assert svc.room.pin_class(t, pin["template"], ctx)["upload"]["train_ref"] == ctx["train_ref"]
    job = svc._core.queue.get(svc.runs.train(b, RunSpec(template=pin["template"], train=ctx["train_ref"],
                                    eval=ctx["eval_ref"], verbalizer=ctx["verbalizer"],
                                    model="tiny-class", label_field="y",
                                    train_cfg=TrainConfig(steps=1))).id)
    job = svc._core.queue.wait(job.id, 60)
    assert job.status == "finished", job.error
    with pytest.raises(PermissionDenied):
        svc.room.unpin_class(b)
    svc.room.unpin_class(t)
    assert svc.room.class_pin() is None


def test_comparisons_and_sweeps_belong_to_whoever_started_them(cls):
    from ptuning_core.engine.fewshot import SweepSpec
    svc, a, b, t = cls
    base = spec(steps=2)
    comp = svc._core.queue.get(svc.runs.compare(a, base, ["prompt tuning (none)"]).id)
    with pytest.raises(PermissionDenied, match="this comparison"):
        svc.runs.stop(comp.id, b)
    comp = svc._core.queue.wait(comp.id, 120)
    assert comp.status == "finished", comp.error
    stored = svc._core.store.list()
    assert {r["owner"] for r in stored} == {a} and {r["kind"] for r in stored} == \
        {"train", "compare"}
    cid = next(r["id"] for r in stored if r["kind"] == "compare")
    with pytest.raises(PermissionDenied, match="this comparison"):
        svc.library.delete(cid, b)
    sweep = svc._core.queue.get(svc.runs.sweep(b, SweepSpec(dataset="sentiment", model="tiny-class", ks=[2],
                                          seeds=[13], methods=["discrete"], steps=1,
                                          max_eval=6)).id)
    with pytest.raises(PermissionDenied, match="this sweep"):
        svc.runs.stop(sweep.id, a)
    sweep = svc._core.queue.wait(sweep.id, 120)
    assert sweep.status == "finished", sweep.error
    sid = svc._core.store.list(kind="sweep")[0]
    assert sid["owner"] == b
    with pytest.raises(PermissionDenied, match="this sweep"):
        svc.library.rename(sid["id"], "mine", a)
    svc.library.delete(sid["id"], t)  # the teacher may
    svc.library.delete(cid, a)
    assert svc._core.store.list(kind="sweep") == [] and svc._core.store.list(kind="compare") == []
    with pytest.raises(Exception, match="unknown variant"):
        svc.runs.compare(a, base, ["no such variant"])


def test_working_state_comes_back_in_a_new_tab(cls, tmp_path):
    svc, a, b, t = cls
    raw = b"text,y\n" + b"".join(f"film {i},{['bad', 'good'][i % 2]}\n".encode()
                                 for i in range(10))
    up = svc.data.save_upload(a, raw, "mine.csv", ["text"], "y")
    svc.room.keep_working_state(a, {"name": "Ada L.", "template": "{text} [P] It was [MASK]",
                               "template_input": "{text} [P It was", "dataset": up["name"],
                               "model": "tiny-class", "upload": up, "hfdata": None})
    again = make_service(tmp_path)  # another server process, same home
    st = again.room.working_state(a)
    assert st["name"] == "Ada L." and st["dataset"] == "upload:mine.csv"
    assert st["template"] == "{text} [P] It was [MASK]" and st["template_input"] == \
        "{text} [P It was"
    assert st["model"] == "tiny-class" and st["problems"] == []
    assert st["upload"]["rows"] == up["rows"] and st["upload"]["classes"] == ["bad", "good"]
    assert again.room.working_state(b) == {"name": "Bo", "problems": []}  # B's is B's
    os.unlink(up["train_ref"])  # the file is gone: one line says so, the rest comes back
    st = again.room.working_state(a)
    assert "upload" not in st and st["template"] and "upload it again" in st["problems"][0]
    again._core.queue.close()


def test_two_tabs_changing_different_things_keep_both(cls):
    """Each tab keeps only what it changed: a tab that renames its student does not put back
    the template another tab of the same student replaced meanwhile (nor drop the upload)."""
    svc, a, _, _ = cls
    svc.room.keep_working_state(a, {"template": "{sentence} [P] old [MASK]", "dataset": "topics",
                               "model": "tiny-class"})
    svc.room.keep_working_state(a, {"template": "{sentence} [P*3] new [MASK]"})  # tab 2
    svc.room.keep_working_state(a, {"name": "Ada Lovelace"})  # tab 1, later
    st = svc.room.working_state(a)
    assert st["template"] == "{sentence} [P*3] new [MASK]" and st["dataset"] == "topics"
    assert st["name"] == "Ada Lovelace" and st["model"] == "tiny-class"
    svc.room.keep_working_state(a, {"model": None})  # None removes what was kept
    assert "model" not in svc.room.working_state(a)
