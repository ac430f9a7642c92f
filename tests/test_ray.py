"""The Ray job backend (ptuning_core/executors/raybackend.py) on a local Ray instance with 2 CPUs (two
actors), on a tiny random model saved to a folder so that the actors load the same backbone
the local backend does. Without PTUNING_RAY_ADDRESS nothing imports Ray, and an address that
cannot be reached gives one line, never a hang and never the local backend instead."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ptuning_core.engine.experiment import RunSpec, run_experiment
from ptuning_core.engine.fewshot import SweepSpec, run_sweep, summarize
from ptuning_core.service import Service, Settings
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import TrainConfig
from tiny import tiny_causal

ROOT = Path(__file__).resolve().parent.parent
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed "
                                                    "(pip install -r requirements-ray.txt)")
VERB = {"negative": ["terrible"], "positive": ["great"]}
A, B, C = "a" * 16, "b" * 16, "c" * 16


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random causal LM saved as a model folder: every process loads the same one."""
    d = tmp_path_factory.mktemp("models") / "tiny-llama"
    bb = tiny_causal()
    bb.model.save_pretrained(d)
    bb.tokenizer.save_pretrained(d)
    return str(d)


@pytest.fixture(scope="module")
def pool(tiny_dir):
    """One local Ray instance (2 CPUs, no dashboard) and its pool of two actors per module."""
    from ptuning_core.executors import raybackend
    old = {k: os.environ.get(k) for k in ("PTUNING_RAY_NUM_CPUS", "PTUNING_RAY_WORKERS")}
    os.environ["PTUNING_RAY_NUM_CPUS"] = "2"
    os.environ.pop("PTUNING_RAY_WORKERS", None)
    try:
        p = raybackend.pool("local")
        assert p.size == 2
        yield p
    finally:
        raybackend.shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def ray_service(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("PTUNING_RAY_ADDRESS", "local")
    svc = Service(Settings(allow_local_paths=True, max_steps=10 ** 5, max_queued=5),
                  RunStore(tmp_path / "runs"))
    assert svc._core.executor.pool is pool and (svc.info().backend, svc.info().workers, svc.info().backend_error) == ("ray", 2, None)
    yield svc
    svc._core.queue.close()


def run_spec(model, steps=4, name="", **kw):
    return RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer=VERB, model=model, shots=2, max_eval=8,
                   device="cpu", name=name,
                   train_cfg=TrainConfig(steps=steps, batch_size=2, snapshot_every=2, **kw))


def wait_for(cond, what, limit=120.0):
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


# ---- results ----------------------------------------------------------------------------------
@needs_ray
@pytest.mark.ray
def test_sweep_across_two_actors_equals_the_local_backend(pool, tiny_dir):
    from ptuning_core.executors import raybackend
    spec = SweepSpec(dataset="sentiment", model=tiny_dir, ks=[2, 4], seeds=[13, 21],
                     methods=["discrete", "ptuning", "linear-probe"], steps=3, max_eval=8,
                     device="cpu")
    events = []
    rows = raybackend.run_sweep(pool, spec, callback=events.append, session=A)
    # The workers start with empty caches: so does this process's run. (Frozen prefixes kept
    # from earlier tests on the same tiny model score within 1e-5 of fresh ones, enough to flip
    # a near-tie of a random model on 8 examples and so a 3-step run's accuracy.)
    from ptuning_core.lm.kvcache import SHARED
    SHARED.clear()
    local = run_sweep(spec)
    assert len(rows) == len(local) == 12
    assert {r["worker"] for r in rows} == {0, 1}  # both actors ran cells
    assert [{k: v for k, v in r.items() if k != "worker"} for r in rows] == local
    assert summarize(rows) == summarize(local)
    cells = [e for e in events if e["type"] == "cell"]
    assert sorted(e["done"] for e in cells) == list(range(1, 13))
    assert all(e["total"] == 12 for e in cells)


@needs_ray
@pytest.mark.ray
@pytest.mark.parametrize("name", ["E1", "E5"])  # runs-based and sweep-based experiments
def test_an_experiment_on_two_actors_equals_the_local_backend(pool, tiny_dir, name):
    from ptuning_core.engine import experiments as X
    p = X.plan(X.ExperimentRequest(name, model=tiny_dir, device="cpu", seeds=[1, 2], ks=[2],
                                   steps=2, max_eval=8))
    events = []
    ray_res = X.run(p, callback=events.append, pool=pool)
    local = X.run(p)
    assert ray_res["backend"] == "ray" and ray_res["workers"] == 2
    strip = lambda cells: [{k: v for k, v in c.items() if k != "worker"} for c in cells]  # noqa: E731
    assert len(ray_res["cells"]) == p.n_cells
    assert strip(ray_res["cells"]) == strip(local["cells"])
    assert X.conclude(X.get(name), ray_res) == X.conclude(X.get(name), local)
    assert [e for e in events if e["type"] == "cell"][-1]["done"] == p.n_cells


@needs_ray
@pytest.mark.ray
def test_run_streams_its_events_and_the_driver_stores_it(pool, tiny_dir, tmp_path):
    from ptuning_core.executors import raybackend
    store = RunStore(tmp_path / "runs")
    spec = run_spec(tiny_dir, steps=6)
    rid = store.create("on ray", spec.to_dict(), A)
    events = []
    res = raybackend.run_recorded(pool, spec, store, rid, callback=events.append, session=A)
    local = run_experiment(run_spec(tiny_dir, steps=6))
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7))  # every step, in order, live
    assert res["train"]["losses"] == local["train"]["losses"]  # same seed, same numbers
    assert [round(e["loss"], 5) for e in steps] == local["train"]["losses"]
    assert res["continuous"] == local["continuous"] and res["discrete"] == local["discrete"]
    run = store.get(rid)
    assert run["status"] == "finished" and run["result"]["continuous"] == local["continuous"]
    assert run["result"]["details"]["continuous"]["predictions"]  # per-example results too
    assert [s["step"] for s in store.steps(rid)] == list(range(1, 7))  # logged by the driver
    assert set(store.tensors(rid, "prompt.safetensors")) == {"embeddings", "init"}
    assert store.tensors(rid, "trajectory.safetensors")
    assert res["run_dir"] == str(store.run_dir(rid))


@needs_ray
@pytest.mark.ray
def test_service_queues_runs_on_ray_and_a_user_error_stays_one_line(ray_service, tiny_dir):
    svc = ray_service
    job = svc._core.queue.get(svc.runs.train(A, run_spec(tiny_dir, steps=3, name="first")).id)
    job = svc._core.queue.wait(job.id, 120)
    assert job.status == "finished", job.error
    run = svc._core.store.get(job.run_id, details=False)
    assert run["status"] == "finished" and run["owner"] == A
    assert len(svc._core.store.steps(job.run_id)) == 3
    # an error raised on the worker comes back as itself (a user error), and the run is failed
    from ptuning_core.executors import raybackend
    bad = run_spec(tiny_dir, steps=2)
    bad.train_cfg.encoder = "nope"
    rid = svc._core.store.create("bad", bad.to_dict(), A)
    with pytest.raises(Exception) as ei:
        raybackend.run_recorded(svc._core.executor.pool, bad, svc._core.store, rid, session=A)
    assert type(ei.value).__name__ == "ConfigError"
    assert svc._core.store.get(rid, details=False)["status"] == "failed"


@needs_ray
@pytest.mark.ray
def test_experiments_evaluations_and_retests_run_on_the_pool(ray_service, tiny_dir, tmp_path,
                                                             monkeypatch):
    """On a server with a pool, an experiment, an evaluation and a re-test run on its workers:
    with the functions that would do that work in this (the web) process made to fail, all
    three finish; the re-test is stored and a new Service on the same store has it."""
    from ptuning_core.engine import experiment
    from ptuning_core.engine import learned
    from ptuning_core.app import views
    from ptuning_core.api import ExperimentRequest
    svc = ray_service
    job = svc._core.queue.wait(svc.runs.train(A, run_spec(tiny_dir, steps=3)).id, 120)
    assert job.status == "finished", job.error
    rid = job.run_id

    def here(*a, **k):
        raise AssertionError("this work ran in the web process, not on a Ray worker")
    for mod, name in ((experiment, "run_experiment"), (learned, "evaluate_prompt"),
                      (views, "retest")):
        monkeypatch.setattr(mod, name, here)
    with pytest.raises(AssertionError, match="web process"):  # the guard does guard
        learned.evaluate_prompt(None, None, "sentiment:test")

    ex = svc.runs.experiment(A, ExperimentRequest("E1", model=tiny_dir, device="cpu",
                                                  seeds="1,2", ks="2", steps=2, max_eval=8))
    assert ex.kind == "experiment"
    ev = svc.runs.evaluate(A, rid, "sentiment:test", 8)
    rt = svc.inspect.retest(A, rid)
    for v in (ex, ev, rt):
        done = svc._core.queue.wait(v.id, 300)
        assert done.status == "finished", (done.label, done.error)
        assert done.device == "ray"  # it held one of the pool's slots
    res = svc.library.experiment(svc.runs.view(ex.id).run_id)
    assert len(res.cells) == 4 and {c["seed"] for c in res.cells} == {1, 2}
    [evaluation] = svc.library.evaluations(rid)
    assert evaluation.continuous.n == 8 and evaluation.eval_ref == "sentiment:test"
    got = svc.inspect.retest_result(rt.id)
    assert got is not None and got.run_id == rid and got.n == 8
    again = Service(Settings(allow_local_paths=True), RunStore(svc._core.store.root))
    try:
        assert again.inspect.last_retest(rid) == got  # stored, not recomputed (retest fails)
    finally:
        again.close()


@needs_ray
@pytest.mark.ray
def test_comparisons_and_lists_of_runs_go_through_the_pool(ray_service, tiny_dir):
    from ptuning_core.executors import raybackend
    svc = ray_service
    comp = svc._core.queue.get(svc.runs.compare(A, run_spec(tiny_dir, steps=2), ["P-tuning (lstm)",
                                                                  "prompt tuning (none)"]).id)
    comp = svc._core.queue.wait(comp.id, 120)
    assert comp.status == "finished", comp.error
    runs = [r for r in svc._core.store.list() if r["kind"] == "train"]
    assert len(runs) == 2 and {r["status"] for r in runs} == {"finished"}
    assert all(len(svc._core.store.steps(r["id"])) == 2 for r in runs)
    # the entry an experiment uses: a list of specs (dicts too), results as each ends
    specs = [run_spec(tiny_dir, steps=2, seed=s).to_dict() for s in (13, 21)]
    bad = run_spec(tiny_dir, steps=2)
    bad.model = tiny_dir + "-missing"
    seen = {}
    for i, res in raybackend.run_specs(svc._core.executor.pool, specs + [bad], store=svc._core.store, owner=B,
                                       session=B):
        seen[i] = res
    assert sorted(seen) == [0, 1, 2]
    assert type(seen[2]).__name__ == "ModelLoadError" and "no model folder" in str(seen[2])
    for i in (0, 1):
        run = svc._core.store.get(seen[i]["run_id"], details=False)
        assert run["status"] == "finished" and run["owner"] == B
        assert run["config"]["train_cfg"]["seed"] == specs[i]["train_cfg"]["seed"]
    assert svc._core.store.get(seen[0]["run_id"])["result"]["continuous"] == \
        run_experiment(run_spec(tiny_dir, steps=2, seed=13))["continuous"]


# ---- stopping ---------------------------------------------------------------------------------
@needs_ray
@pytest.mark.ray
def test_stop_a_running_run_and_cancel_a_queued_one(ray_service, tiny_dir):
    svc = ray_service
    long_a = svc._core.queue.get(svc.runs.train(A, run_spec(tiny_dir, steps=20000, name="long a")).id)
    long_b = svc._core.queue.get(svc.runs.train(B, run_spec(tiny_dir, steps=20000, name="long b")).id)
    queued = svc._core.queue.get(svc.runs.train(A, run_spec(tiny_dir, steps=3, name="queued")).id)
    for j in (long_a, long_b):
        wait_for(lambda j=j: (j.snapshot()["progress"].get("step") or 0) >= 2, "a step")
    assert svc._core.queue.position(queued.id) == 1  # two actors, both busy: it waits its turn
    svc.runs.stop_run(queued.run_id, A)
    assert queued.status == "cancelled"
    assert svc._core.store.get(queued.run_id, details=False)["status"] == "cancelled"
    svc.runs.stop_run(long_a.run_id, A)
    long_a = svc._core.queue.wait(long_a.id, 120)
    assert long_a.status == "stopped", long_a.error
    run = svc._core.store.get(long_a.run_id, details=False)
    assert run["status"] == "stopped"
    assert 2 <= run["result"]["train"]["steps"] < 20000  # what it learned is kept
    assert svc._core.store.tensors(long_a.run_id, "prompt.safetensors")
    svc.runs.stop_run(long_b.run_id, B)
    long_b = svc._core.queue.wait(long_b.id, 120)
    assert long_b.status == "stopped"


# ---- a worker dies ----------------------------------------------------------------------------
@needs_ray
@pytest.mark.ray
def test_a_killed_actor_fails_its_run_and_the_others_go_on(ray_service, tiny_dir):
    import ray
    svc = ray_service
    doomed = svc._core.queue.get(svc.runs.train(A, run_spec(tiny_dir, steps=20000, name="doomed")).id)
    other = svc._core.queue.get(svc.runs.train(B, run_spec(tiny_dir, steps=20000, name="other")).id)
    for j in (doomed, other):
        wait_for(lambda j=j: (j.snapshot()["progress"].get("step") or 0) >= 2, "a step")
    idx = next(i for i, what in svc._core.executor.pool.busy.items() if what == doomed.run_id)
    lost = svc._core.executor.pool.lost
    ray.kill(svc._core.executor.pool.handle(idx))
    doomed = svc._core.queue.wait(doomed.id, 120)
    assert doomed.status == "failed" and "died" in doomed.error
    run = svc._core.store.get(doomed.run_id, details=False)
    assert run["status"] == "failed" and "died" in run["error"]
    assert other.status == "running"  # the other actor goes on
    svc.runs.stop_run(other.run_id, B)
    other = svc._core.queue.wait(other.id, 120)
    assert other.status == "stopped"
    assert svc._core.store.get(other.run_id, details=False)["status"] == "stopped"
    assert svc._core.executor.pool.lost == lost + 1  # the dead actor was replaced: two new runs both finish
    again = [svc._core.queue.get(svc.runs.train(C, run_spec(tiny_dir, steps=2, name=f"after {i}")).id) for i in (1, 2)]
    for j in again:
        j = svc._core.queue.wait(j.id, 120)
        assert j.status == "finished", j.error


@needs_ray
@pytest.mark.ray
def test_a_sweep_cell_whose_actor_dies_runs_again_elsewhere(pool, tiny_dir):
    import ray
    from ptuning_core.executors import raybackend
    spec = SweepSpec(dataset="sentiment", model=tiny_dir, ks=[2], seeds=[13],
                     methods=["ptuning", "prompt-tuning"], steps=20000, max_eval=6,
                     device="cpu")
    stop, out = threading.Event(), {}
    t = threading.Thread(target=lambda: out.update(rows=raybackend.run_sweep(
        pool, spec, stop=stop, session=A)))
    t.start()
    wait_for(lambda: len(pool.busy) == 2, "both cells to start")
    lost = pool.lost
    victim = dict(pool.busy)[0]
    ray.kill(pool.handle(0))
    wait_for(lambda: pool.lost == lost + 1 and victim in pool.busy.values(),
             "the lost cell to start again")
    stop.set()
    t.join(120)
    rows = out["rows"]
    assert sorted(r["method"] for r in rows) == ["prompt-tuning", "ptuning"]
    assert all(r["accuracy"] is not None and "error" not in r for r in rows)


def test_workers_are_handed_out_round_robin_over_sessions():
    from ptuning_core.executors.raybackend import FairSlots
    slots = FairSlots(1)
    assert slots.acquire(A) == 0  # A's first cell holds the only worker
    got = []

    def wait(session):
        i = slots.acquire(session)
        got.append(session)
        slots.release(i)
    threads = []
    for who in (A, A, A, B):  # A's sweep queues three more cells, then B one run
        threads.append(threading.Thread(target=wait, args=(who,)))
        threads[-1].start()
        wait_for(lambda n=len(threads): len(slots.waiting()) == n, "the waiter")
    slots.release(0)
    for t in threads:
        t.join(30)
    assert got == [B, A, A, A]  # B was never served: it goes before A's remaining cells
    stop = threading.Event()
    stop.set()
    assert slots.acquire(C, stop) is None  # a waiter that gives up (a cancelled job)


# ---- the CLI ----------------------------------------------------------------------------------
@needs_ray
@pytest.mark.ray
def test_cli_fewshot_and_run_on_ray_say_backend_and_workers(pool, tiny_dir, monkeypatch, capsys):
    from ptuning_core.cli import main
    monkeypatch.setenv("PTUNING_RAY_ADDRESS", "local")
    args = ["fewshot", "--dataset", "sentiment", "--model", tiny_dir, "--k", "2",
            "--seeds", "13,21", "--methods", "discrete,prompt-tuning", "--steps", "2",
            "--max-eval", "6", "--device", "cpu", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["backend"] == "ray" and out["workers"] == 2 and len(out["rows"]) == 4
    assert main(args + ["--backend", "local"]) == 0
    local = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert local["backend"] == "local" and "workers" not in local
    assert local["summary"] == out["summary"]
    run = ["run", "--model", tiny_dir, "--train", "sentiment:train", "--eval", "sentiment:test",
           "--template", "{sentence} [P*2] It was [MASK]", "--verbalizer", json.dumps(VERB),
           "--shots", "2", "--steps", "3", "--max-eval", "6", "--device", "cpu", "--json"]
    assert main(run) == 0  # PTUNING_RAY_ADDRESS set: Ray is the default
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["backend"] == "ray" and res["workers"] == 1
    assert res["status"] == "finished" and len(res["train"]["losses"]) == 3
    stored = RunStore().get(Path(res["run_dir"]).name)
    assert stored["status"] == "finished" and stored["owner"] == "cli"
    assert stored["result"]["continuous"] == res["continuous"]


def _cli(args, env_extra, tmp_path):
    env = dict(os.environ, PTUNING_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1",
               **env_extra)
    code = ("import json, sys\n"
            "from ptuning_core.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "if rc == 0:\n"
            "    from ptuning_core.service import Service\n"
            "    Service()._core.queue.close()  # the app's door, too\n"
            "print(json.dumps({'rc': rc, 'ray': 'ray' in sys.modules}))\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_without_ray_configured_the_cli_never_imports_ray(tiny_dir, tmp_path):
    env = {"PTUNING_RAY_ADDRESS": ""}
    p = _cli(["run", "--model", tiny_dir, "--train", "sentiment:train", "--eval",
              "sentiment:test", "--template", "{sentence} [P] It was [MASK]", "--verbalizer",
              json.dumps(VERB), "--shots", "2", "--steps", "2", "--max-eval", "4",
              "--device", "cpu", "--json"], env, tmp_path)
    lines = p.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"rc": 0, "ray": False}, p.stderr
    assert json.loads(lines[-2])["backend"] == "local"


@needs_ray
def test_an_unreachable_ray_address_is_one_line_and_exit_2(tiny_dir, tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    p = _cli(["fewshot", "--dataset", "sentiment", "--model", tiny_dir, "--k", "2", "--seeds",
              "13", "--methods", "discrete", "--max-eval", "4", "--json"],
             {"PTUNING_RAY_ADDRESS": addr}, tmp_path)
    assert json.loads(p.stdout.strip().splitlines()[-1])["rc"] == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot reach the Ray cluster at " + addr)
    # and no results from the local backend instead
    assert '"rows"' not in p.stdout


@needs_ray
def test_an_unreachable_ray_address_refuses_runs_and_the_app_says_why(tiny_dir, tmp_path,
                                                                     monkeypatch):
    from ptuning_core.executors.jobs import QueueFull
    monkeypatch.setenv("PTUNING_RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    svc = Service(Settings(allow_local_paths=True), RunStore(tmp_path / "runs"))
    assert svc._core.executor.pool is None and "cannot reach the Ray cluster" in svc.info().backend_error
    assert svc.info().backend == "ray" and svc.info().workers == 0
    with pytest.raises(QueueFull, match="cannot reach the Ray cluster"):
        svc.runs.train(A, run_spec(tiny_dir, steps=2))
    with pytest.raises(QueueFull, match="cannot reach the Ray cluster"):
        svc.runs.sweep(A, SweepSpec(dataset="sentiment", model=tiny_dir, ks=[2], seeds=[13]))
    assert svc._core.queue.jobs() == [] and svc._core.store.list() == []  # nothing ran here instead


@pytest.fixture
def unreachable(monkeypatch):
    monkeypatch.setenv("PTUNING_RAY_ADDRESS", f"127.0.0.1:{free_port()}")


@needs_ray
def test_the_app_banner_shows_an_unreachable_backend(unreachable, tiny_app):
    svc, page = tiny_app
    assert "cannot reach the Ray cluster" in svc.info().backend_error
    at = page()
    assert any("Training is unavailable on this server: cannot reach the Ray cluster"
               in e.value for e in at.error)


@pytest.fixture
def ray_env(pool, monkeypatch):
    monkeypatch.setenv("PTUNING_RAY_ADDRESS", "local")


@needs_ray
@pytest.mark.ray
def test_the_app_says_where_it_trains(ray_env, tiny_app):
    svc, page = tiny_app
    assert (svc.info().backend, svc.info().workers, svc.info().backend_error) == ("ray", 2, None)
    at = page()
    assert any(c.value == "Training on Ray at local: 2 workers" for c in at.caption)
    assert not at.error
