"""Many users, crashes and server mode: the queue, the store and the service under load."""
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ptuning_core.lm import registry
from ptuning_core.lm.backbone import ModelLoadError
from ptuning_core.data.bundled import DataError
from ptuning_core.engine.experiment import RunSpec
from ptuning_core.executors.jobs import JobQueue, QueueFull
from ptuning_core.service import Service, Settings
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import TrainConfig
from tiny import tiny_causal

ROOT = Path(__file__).resolve().parents[2]
VERB = {"negative": ["terrible"], "positive": ["great"]}


def tiny_service(tmp_path, **kw):
    bb = tiny_causal()
    bb.name = "tiny-rel"
    registry.put(bb)
    s = Settings(allowed_models=["tiny-rel"], **kw)
    return Service(s, RunStore(tmp_path / "runs"))


def spec(steps=3, **kw):
    return RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer=VERB, model="tiny-rel", shots=2,
                   max_eval=6, train_cfg=TrainConfig(steps=steps, batch_size=2, eval_every=0,
                                                     snapshot_every=0), **kw)


def test_round_robin_fairness_and_positions():
    q = JobQueue(max_queued_per_session=5)
    gate = threading.Event()
    order = []

    def fn(tag):
        def run(job):
            gate.wait(10)
            order.append(tag)
        return run
    q.submit("blocker", fn("blocker"))
    time.sleep(0.2)  # the blocker is running
    a = [q.submit("A", fn(f"A{i}")) for i in range(3)]
    b = q.submit("B", fn("B0"))
    c = q.submit("C", fn("C0"))
    positions = sorted(q.position(j.id) for j in a + [b, c])
    assert positions == [1, 2, 3, 4, 5]  # consistent: each place once
    assert q.position(b.id) < q.position(a[2].id)  # B does not wait for all of A
    gate.set()
    for j in a + [b, c]:
        q.wait(j.id, 20)
    assert order[0] == "blocker" and order.index("B0") < order.index("A2")
    assert order.index("C0") < order.index("A2")
    q.close()


def test_per_session_cap_and_total_cap():
    q = JobQueue(max_queued_per_session=2, max_queued_total=3)
    gate = threading.Event()
    fn = lambda job: gate.wait(10)  # noqa: E731
    q.submit("s1", fn)
    q.submit("s1", fn)
    with pytest.raises(QueueFull, match="limit is 2"):
        q.submit("s1", fn)
    q.submit("s2", fn)
    with pytest.raises(QueueFull, match="queue is full"):
        q.submit("s3", fn)
    gate.set()
    q.close()


def test_finished_jobs_keep_only_a_small_summary():
    """After N done jobs (finished, failed, cancelled) the queue holds none of their rows,
    events, loss lists or results: only status, run id, error and the last progress numbers."""
    import weakref

    class Rows(list):  # a list that can be weakly referenced
        pass
    q = JobQueue(max_queued_per_session=20)
    gate = threading.Event()
    refs, jobs = [], []
    for i in range(8):
        rows = Rows({"text": f"example {i} {j}" * 20} for j in range(2000))
        refs.append(weakref.ref(rows))

        def fn(job, rows=rows, i=i):
            gate.wait(10)
            # a variant starts (it clears the step numbers of the one before), then trains
            job.event({"type": "variant", "name": "v", "index": 0, "total": 1, "rows": rows})
            for s in range(1, 41):
                job.event({"type": "step", "step": s, "steps": 40, "loss": 1 / s,
                           "seconds": s / 10})
            job.event({"type": "eval", "step": 40, "dev_accuracy": 0.5})
            if i == 6:
                raise RuntimeError("something broke")
            return {"rows": list(rows)}
        jobs.append(q.submit("s", fn))
        jobs[-1].run_id = f"run{i}"
    del rows, fn
    q.stop(jobs[7].id)  # still queued: cancelled
    gate.set()
    for j in jobs:
        q.wait(j.id, 30)
    gc.collect()
    assert [j.status for j in jobs] == ["finished"] * 6 + ["failed", "cancelled"]
    assert all(r() is None for r in refs)  # no rows kept anywhere (function, events, result)
    for i, j in enumerate(jobs):
        snap = j.snapshot()
        assert j.fn is None and snap["events"] == [] and snap["progress"]["losses"] == []
        assert snap["progress"]["dev"] == [] and not hasattr(j, "result")
        assert snap["run_id"] == f"run{i}"
        if i < 7:
            assert snap["progress"]["step"] == 40 and snap["progress"]["loss"] == 1 / 40
    assert jobs[6].error == "RuntimeError: something broke"
    q.close()


def test_a_finished_run_job_lets_go_of_its_prepared_data(tmp_path, monkeypatch):
    import weakref

    import ptuning_core.app.runs as service_module
    svc = tiny_service(tmp_path)
    kept = []
    real = service_module.prepare

    def prepare(spec):
        prep = real(spec)
        kept.append(weakref.ref(prep))
        return prep
    monkeypatch.setattr(service_module, "prepare", prepare)
    job = svc._core.queue.get(svc.runs.train("s", spec()).id)
    job = svc._core.queue.wait(job.id, 60)
    gc.collect()
    assert job.status == "finished" and kept and kept[0]() is None
    assert job.snapshot()["progress"]["step"] == 3
    assert svc._core.store.get(job.run_id)["result"]["train"]["steps"] == 3  # pages read the store
    svc._core.queue.close()


def test_load_many_sessions_every_run_finishes_or_is_refused(tmp_path):
    import psutil
    svc = tiny_service(tmp_path, max_queued=2)
    gc.collect()
    base = psutil.Process().memory_info().rss
    results, refused, lock = [], [], threading.Lock()

    def session(i):
        for _ in range(3):
            try:
                job = svc._core.queue.get(svc.runs.train(f"s{i}", spec()).id)
                with lock:
                    results.append(job)
            except QueueFull as e:
                with lock:
                    refused.append(str(e))
    threads = [threading.Thread(target=session, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j in results:
        j = svc._core.queue.wait(j.id, 120)
    assert len(results) + len(refused) == 30
    assert refused and all("limit is 2" in m for m in refused)
    assert all(j.status == "finished" for j in results), [j.error for j in results]
    runs = svc._core.store.list()
    assert sorted(r["id"] for r in runs) == sorted(j.run_id for j in results)  # none lost/duped
    assert all(r["status"] == "finished" for r in runs)
    assert [k for k in registry.loaded() if k[0] == "tiny-rel"] == [("tiny-rel", "cpu")]
    svc._core.queue.close()
    gc.collect()
    assert psutil.Process().memory_info().rss - base < 300 * 2 ** 20


def test_abandoned_session_is_cancelled_after_idle_time(tmp_path):
    svc = tiny_service(tmp_path, idle_timeout=1, max_steps=100000)
    job = svc._core.queue.get(svc.runs.train("ghost", spec(steps=100000)).id)
    queued = svc._core.queue.get(svc.runs.train("ghost", spec()).id)
    job = svc._core.queue.wait(job.id, 30)
    assert job.status == "stopped" and queued.status == "cancelled"
    assert svc._core.store.get(job.run_id)["status"] == "stopped"
    assert svc._core.store.get(queued.run_id)["status"] == "cancelled"
    svc._core.queue.close()


def test_a_failing_run_is_marked_failed_and_the_worker_keeps_serving(tmp_path, monkeypatch):
    svc = tiny_service(tmp_path)
    import ptuning_core.engine.train as T
    real = T.train
    calls = {"n": 0}

    def boom(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **k)
    monkeypatch.setattr("ptuning_core.engine.experiment.train", boom)
    bad = svc._core.queue.get(svc.runs.train("s", spec()).id)
    good = svc._core.queue.get(svc.runs.train("s", spec()).id)
    bad = svc._core.queue.wait(bad.id, 30)
    good = svc._core.queue.wait(good.id, 30)
    assert bad.status == "failed" and "out of memory" in bad.error
    r = svc._core.store.get(bad.run_id)
    assert r["status"] == "failed" and "out of memory" in r["error"]
    assert good.status == "finished"
    svc._core.queue.close()


def test_sigkill_mid_run_leaves_an_interrupted_run_with_its_metrics(tmp_path):
    bb = tiny_causal()
    folder = tmp_path / "tiny-model"
    bb.model.save_pretrained(folder)
    bb.tokenizer.save_pretrained(folder)
    home = tmp_path / "home"
    store = RunStore(home / "runs")
    keep = store.create("kept", {"template": "x"}, status="finished")
    env = dict(os.environ, PTUNING_HOME=str(home))
    p = subprocess.Popen([sys.executable, "-m", "ptuning_core", "run", "--model", str(folder),
                          "--train", "sentiment:train", "--eval", "sentiment:test", "--template",
                          "{sentence} [P*2] It was [MASK]", "--verbalizer",
                          '{"negative": ["terrible"], "positive": ["great"]}', "--shots", "4",
                          "--steps", "100000", "--batch-size", "2"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = home / "runs" / "runs.sqlite"
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline:
        with sqlite3.connect(db) as c:
            n = c.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        if n >= 3:
            break
        time.sleep(0.3)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert n >= 3
    s = RunStore(home / "runs")  # "restart": opens cleanly
    runs = {r["name"]: r for r in s.list()}
    victim = next(r for r in runs.values() if r["id"] != keep)
    assert victim["status"] == "interrupted"
    assert len(s.steps(victim["id"])) >= 3
    assert s.get(keep)["status"] == "finished"
    assert not list((home / "runs").rglob("*.tmp"))


@pytest.mark.parametrize("name", ["/etc", "../../secret", "~/.ssh", "evil.gguf", "C:\\x",
                                  "someone/unknown-model"])
def test_server_refuses_models_it_does_not_allow(tmp_path, name):
    svc = tiny_service(tmp_path)
    with pytest.raises(ModelLoadError):
        svc._core.settings.check_model(name)
    with pytest.raises(ModelLoadError):
        svc.runs.train("s", spec(steps=1).__class__(**{**spec().__dict__, "model": name}))


@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../etc/passwd", "data/manifest.json",
                                 "sentiment:../../etc/passwd"])
def test_students_cannot_read_server_files_through_data_refs(tmp_path, ref):
    svc = tiny_service(tmp_path)
    with pytest.raises(DataError):
        svc.data.check_ref(ref)
    with pytest.raises(DataError):
        svc.runs.train("s", RunSpec(template="{sentence} [P] [MASK]", train=ref,
                                    eval="sentiment:test", verbalizer=VERB, model="tiny-rel"))


def test_server_step_limit(tmp_path):
    svc = tiny_service(tmp_path, max_steps=10)
    from ptuning_core.engine.experiment import USER_ERRORS
    from ptuning_core.engine.train import ConfigError
    with pytest.raises(ConfigError, match="at most 10 steps") as e:
        svc.runs.train("s", spec(steps=11))
    assert isinstance(e.value, USER_ERRORS)  # shown to the user as a message
    assert svc.info().max_steps == 10  # what the pages bound their step fields by
    assert svc._core.store.list() == []  # the refused run left no trace
    # one check for every kind of work (runs.submit): comparisons, sweeps, experiments
    from ptuning_core.api import ExperimentRequest, SweepSpec
    with pytest.raises(ConfigError, match="at most 10 steps"):
        svc.runs.compare("s", spec(steps=11), ["P-tuning (lstm)"])
    with pytest.raises(ConfigError, match="at most 10 steps"):
        svc.runs.sweep("s", SweepSpec(dataset="sentiment", model="tiny-rel", ks="2", seeds=[13],
                                      steps=11))
    with pytest.raises(ConfigError, match="at most 10 steps"):
        svc.runs.experiment("s", ExperimentRequest("E1", model="tiny-rel", steps=11))
    assert svc._core.queue.jobs() == [] and svc._core.store.list() == []


def test_label_words_the_model_cannot_encode_are_refused_before_queuing(tmp_path):
    from ptuning_core.lm.verbalizer import VerbalizerError
    svc = tiny_service(tmp_path)
    bad = spec()
    bad.verbalizer = {"negative": ["great"], "positive": ["great"]}
    with pytest.raises(VerbalizerError, match="same token"):
        svc.runs.train("s", bad)
    assert svc._core.store.list() == []


def test_a_run_whose_page_keeps_polling_is_never_reaped(tmp_path):
    """The live panels heartbeat every second (ui.common.heartbeat in each polling fragment):
    such a session outlives the idle timeout; the same run abandoned is stopped."""
    svc = tiny_service(tmp_path, idle_timeout=1, max_steps=100000)
    job = svc._core.queue.get(svc.runs.train("open-page", spec(steps=100000)).id)
    done = threading.Event()

    def poll():
        while not done.is_set():
            svc._core.queue.heartbeat("open-page")
            time.sleep(0.2)
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(3.5)  # over three idle timeouts
    assert job.status == "running"
    done.set()
    t.join()
    svc._core.queue.wait(job.id, 30)  # the page is closed: now it is reaped
    assert job.status == "stopped"
    svc._core.queue.close()


def test_same_settings_same_losses_from_the_cli_and_the_service_beside_another_run(tmp_path,
                                                                                  capsys):
    """Reproducible from anywhere: a run queued in the app's service while another run trains
    gives bit-identical losses to the same settings on the command line."""
    import json

    from ptuning_core import cli
    svc = tiny_service(tmp_path)
    from ptuning_core.engine.experiment import run_experiment
    busy = spec(steps=60)
    busy.template = "[P*3] {sentence} It was [MASK]"
    busy.train_cfg.seed = 5
    t = threading.Thread(target=run_experiment, args=(busy,))  # e.g. a CLI run beside the app
    t.start()
    mine = svc._core.queue.get(svc.runs.train("a", spec(steps=8)).id)
    mine = svc._core.queue.wait(mine.id, 60)
    assert t.is_alive(), "the other run should still be training"
    t.join()
    app_losses = svc._core.store.get(mine.run_id)["result"]["train"]["losses"]
    code = cli.main(["run", "--model", "tiny-rel", "--device", "cpu", "--train", "sentiment:train",
                     "--eval", "sentiment:test", "--template", "{sentence} [P*2] It was [MASK]",
                     "--verbalizer", json.dumps(VERB), "--shots", "2", "--max-eval", "6",
                     "--steps", "8", "--batch-size", "2", "--lr", str(TrainConfig().lr),
                     "--seed", str(TrainConfig().seed), "--json"])
    assert code == 0
    cli_losses = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["train"]["losses"]
    assert len(app_losses) == 8 and app_losses == cli_losses
    svc._core.queue.close()


def test_streamlit_does_not_collect_garbage_after_every_script_run():
    """The app's config turns off Streamlit's full gc.collect() after each script run: every
    open page's live panels rerun each 1-2 s, and with a model loaded one full collection holds
    the GIL for a third of a second, which starved the training thread (100 s steps with a few
    pages open). Read with Streamlit's own config loader from the app's folder."""
    code = ("import os; os.chdir(%r); from streamlit import config; "
            "config.get_config_options(force_reparse=True); "
            "print(config.get_option('runner.postScriptGC'))" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
