"""Compare, Embeddings, Few-shot and Class board pages on a tiny model (AppTest)."""
import time

import pytest

from ptuning_core.engine.experiment import RunSpec
from ptuning_core.engine.train import TrainConfig


@pytest.fixture
def env(tiny_app):
    return tiny_app


def finished_run(svc, steps=6):
    job = svc._core.queue.get(svc.runs.train("t", RunSpec(
        template="{sentence} [P:it] [P*2] was [MASK]", train="sentiment:train",
        eval="sentiment:test", verbalizer={"negative": ["terrible"], "positive": ["great"]},
        model=svc._core.settings.allowed_models[0], shots=4, max_eval=12, train_cfg=TrainConfig(steps=steps, batch_size=4,
                                                                 snapshot_every=2))).id)
    job = svc._core.queue.wait(job.id, 60)
    assert job.status == "finished", job.error
    return job.run_id


def wait_jobs(svc, timeout=120):
    end = time.time() + timeout
    while time.time() < end and any(not j.done for j in svc._core.queue.jobs()):
        time.sleep(0.2)
    assert all(j.status == "finished" for j in svc._core.queue.jobs()), \
        [(j.status, j.error) for j in svc._core.queue.jobs()]


def test_compare_shows_discrete_and_continuous_accuracies(env):
    svc, page = env
    at = page("app_pages/compare.py")
    at.number_input[0].set_value(4)  # steps
    at.number_input[1].set_value(4)  # k
    at.number_input[3].set_value(12)  # test examples
    at.button[0].click().run()
    wait_jobs(svc)
    at = page("app_pages/compare.py")
    table = next(df.value for df in at.dataframe if "Δ vs discrete" in df.value.columns)
    assert list(table["prompt"]) == ["discrete", "P-tuning (lstm)", "prompt tuning (none)"]
    # every number is the stored runs' per-example results, recomputed here
    from ptuning_core.stats import ci95, fmt_acc, mcnemar
    comp = svc._core.store.list(kind="compare")[0]
    runs = {v["variant"]: svc._core.store.details(v["run_id"]) for v in comp["result"]["variants"]}

    def right(block):
        return [bool(p["correct"]) for p in sorted(block["predictions"],
                                                   key=lambda p: p["index"])]
    disc = right(runs["P-tuning (lstm)"]["discrete"])
    assert right(runs["prompt tuning (none)"]["discrete"]) == disc  # the same examples
    want = {"discrete": disc} | {name: right(r["continuous"])
                                 for name, r in runs.items()}
    for _, row in table.iterrows():
        c = want[row["prompt"]]
        acc = sum(c) / len(c)
        assert row["n"] == len(c) == 12
        assert row["accuracy"] == pytest.approx(acc)
        assert row["95% CI"] == fmt_acc(acc, ci95(acc, len(c)))  # Wilson, stored to 4 places
        assert row["Δ vs discrete"] == pytest.approx(acc - sum(disc) / len(disc))
        if row["prompt"] != "discrete":  # paired with the discrete prompt, example by example
            pr = mcnemar(disc, c)
            assert row["p (McNemar)"] == pytest.approx(pr.mcnemar_p, rel=5e-3)
            assert f"{row['prompt']} was right on {pr.only_b_right} examples where discrete " \
                   f"was wrong, and the reverse on {pr.only_a_right}" in row["verdict"], \
                row["verdict"]
    pairs = next(df.value for df in at.dataframe if "B right, A wrong" in df.value.columns)
    assert len(pairs) == 1  # the two variants against each other
    assert len(at.get("plotly_chart")) >= 3  # loss curves + confusion matrices
    assert any("examples changed" in c.value for c in at.caption)


def test_embeddings_page_nearest_tokens_map_and_discretize(env):
    svc, page = env
    rid = finished_run(svc)
    at = page("app_pages/embeddings.py")
    near = next(df.value for df in at.dataframe if "nearest" in df.value.columns)
    assert list(near["pseudo"]) == ["P0", "P1", "P2"]
    assert near["init word"][0].strip() == "it" and near["init word"][1] == "(random)"
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # map, trajectory loss, similarity heatmap
    assert at.select_slider  # the trajectory replay slider
    assert any("projection, not an explanation" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Evaluate the discretized template").click().run()
    jid = at.session_state[f"retest-{rid}"]  # a job in the queue, not the script thread
    svc._core.queue.wait(jid, 60)
    end = time.time() + 30
    while time.time() < end and svc.inspect.retest_result(jid) is None:
        time.sleep(0.1)
    at.run()
    labels = [m.label for m in at.metric]
    assert "nearest-word prompt" in labels and "continuous prompt" in labels
    assert any("McNemar" in i.value for i in at.info)  # the gap comes with a paired test
    assert svc._core.store.get(rid)


def test_embeddings_refresh_finds_the_queued_retest(env):
    """A refresh (a new session) while the re-test waits or runs shows it again, with its
    progress, instead of offering the button as if nothing were queued; then its result."""
    import threading
    svc, page = env
    rid = finished_run(svc)
    gate = threading.Event()
    blocker = svc._core.queue.get(svc.runs.submit("someone", "blocker", "task", lambda job: gate.wait(60)).id)
    at = page("app_pages/embeddings.py")
    next(b for b in at.button if b.label == "Evaluate the discretized template").click().run()
    jid = at.session_state[f"retest-{rid}"]
    again = page("app_pages/embeddings.py")  # the refresh: this session never clicked
    assert f"retest-{rid}" not in again.session_state
    assert any("Re-test waiting in the queue" in i.value for i in again.info), \
        [i.value for i in again.info]
    gate.set()
    blocker = svc._core.queue.wait(blocker.id, 60)
    svc._core.queue.wait(jid, 60)
    end = time.time() + 30
    while time.time() < end and svc.inspect.retest_result(jid) is None:
        time.sleep(0.1)
    again.run()
    assert "nearest-word prompt" in [m.label for m in again.metric]


def test_fewshot_sweep_stores_and_draws(env):
    svc, page = env
    at = page("app_pages/fewshot.py")
    at.text_input[0].set_value("2,4")
    at.number_input[0].set_value(1)  # seeds
    at.number_input[1].set_value(2)  # steps
    at.number_input[2].set_value(10)  # test examples
    at.button[0].click().run()
    wait_jobs(svc)
    sweeps = svc._core.store.list(kind="sweep")
    assert len(sweeps) == 1
    rows = sweeps[0]["result"]["rows"]
    assert {r["method"] for r in rows} == {"discrete", "ptuning", "prompt-tuning", "linear-probe"}
    assert {r["k"] for r in rows} == {2, 4}
    at = page("app_pages/fewshot.py")
    assert at.get("plotly_chart") and any("mean" in df.value.columns for df in at.dataframe)


def test_class_board_lists_shared_runs(env):
    svc, page = env
    rid = finished_run(svc, steps=2)
    svc._core.store.share(rid, True, "Ada")
    at = page("app_pages/board.py")
    df = at.dataframe[0].value
    assert df["author"].tolist() == ["Ada"] and df["run"].tolist() == [rid]
