import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ptuning_core.engine.portable import PromptFileError, export_prompt, import_prompt, read_prompt_file
from ptuning_core.store.runs import RunStore, StoreError


def test_run_lifecycle(tmp_path):
    s = RunStore(tmp_path)
    rid = s.create("first", {"template": "{s} [P] [MASK]", "model": "tiny"}, owner="alice")
    s.set_status(rid, "running")
    s.log_steps(rid, [(1, 0.9, None), (2, 0.5, 0.75)])
    s.finish(rid, "finished", {"continuous": {"accuracy": 0.8}},
             {"prompt.safetensors": {"embeddings": torch.randn(2, 4), "init": torch.randn(2, 4)}})
    r = s.get(rid)
    assert r["status"] == "finished" and r["result"]["continuous"]["accuracy"] == 0.8
    assert [x["step"] for x in s.steps(rid)] == [1, 2] and s.steps(rid)[1]["dev"] == 0.75
    s.rename(rid, "renamed")
    s.share(rid, True, "Ada")
    assert s.list(shared_only=True)[0]["author"] == "Ada"
    assert s.tensors(rid)["embeddings"].shape == (2, 4)
    # survives a restart (a new store object on the same folder)
    assert RunStore(tmp_path).get(rid)["name"] == "renamed"
    s.delete(rid)
    assert s.get(rid) is None and not (tmp_path / rid).exists()
    with pytest.raises(StoreError):
        s.rename(rid, "  ")
    with pytest.raises(StoreError):
        s.run_dir("../../etc")


def test_run_of_a_killed_process_shows_as_interrupted(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal
        from ptuning_core.store.runs import RunStore
        s = RunStore({str(tmp_path)!r})
        rid = s.create("doomed", {{}}, status="running")
        s.log_steps(rid, [(1, 0.7, None), (2, 0.6, None)])
        print(rid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
    rid = p.stdout.strip()
    s = RunStore(tmp_path)
    other = s.create("intact", {}, status="finished")
    r = s.get(rid)
    assert r["status"] == "interrupted" and len(s.steps(rid)) == 2
    assert s.get(other)["status"] == "finished"


def test_export_import_round_trip_and_validation(tmp_path):
    from tiny import tiny_causal
    bb = tiny_causal()
    s = RunStore(tmp_path / "runs")
    rid = s.create("r", {"template": "{sentence} [P*2] it was [MASK]", "model": "tiny",
                         "verbalizer": {"0": ["bad"], "1": ["good"]}})
    emb = torch.randn(2, bb.hidden_size)
    s.finish(rid, "finished", {"kind": "causal"}, {"prompt.safetensors": {"embeddings": emb,
                                                                           "init": emb}})
    path = export_prompt(s, rid, tmp_path / "p.safetensors")
    meta, t = read_prompt_file(path)
    assert meta["template"] == "{sentence} [P*2] it was [MASK]" and torch.equal(t["embeddings"], emb)
    new = import_prompt(s, path, backbone=bb)
    assert torch.equal(s.tensors(new)["embeddings"], emb)
    assert s.get(new)["name"] == "r (imported)"  # not the original's name (issue 24)
    assert s.get(new)["config"]["imported_from"] == "p.safetensors"
    with pytest.raises(PromptFileError, match="learned on"):
        import_prompt(s, path, model="other")
    # wrong shapes for the template
    rid2 = s.create("r2", {"template": "{sentence} [P*5] [MASK]", "model": "tiny"})
    s.finish(rid2, "finished", {}, {"prompt.safetensors": {"embeddings": torch.randn(3, bb.hidden_size)}})
    with pytest.raises(PromptFileError, match="pseudo tokens"):
        import_prompt(s, export_prompt(s, rid2, tmp_path / "q.safetensors"), backbone=bb)
    # pickles and junk are refused
    torch.save({"embeddings": emb}, tmp_path / "evil.pt")
    with pytest.raises(PromptFileError, match="only .safetensors"):
        read_prompt_file(tmp_path / "evil.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(PromptFileError, match="not a valid"):
        read_prompt_file(tmp_path / "junk.safetensors")


def test_list_reads_summaries_only_and_get_merges_the_details(tmp_path, monkeypatch):
    """Per-example results live in the run's folder: list() never reads them (nor an old run's
    inline ones) and takes no write lock; get() returns them merged, old layout included."""
    import json
    import sqlite3
    import time
    s = RunStore(tmp_path)
    preds = [{"index": i, "text": "the movie was good " * 10, "gold": "positive",
              "pred": "positive", "correct": True} for i in range(5000)]
    details = {"discrete": {"predictions": preds, "confusion": [[5000, 0], [0, 0]]}}
    ids = []
    for i in range(3):
        rid = s.create(f"run {i}", {"template": "{s} [P] [MASK]"})
        s.finish(rid, "finished", {"discrete": {"accuracy": 1.0}, "details": details})
        ids.append(rid)
    assert (tmp_path / ids[0] / "details.json").is_file()
    db = sqlite3.connect(tmp_path / "runs.sqlite")
    stored = [json.loads(r[0]) for r in db.execute("SELECT result FROM runs")]
    assert all("details" not in r and r["discrete"]["accuracy"] == 1.0 for r in stored)
    # a run written before details moved out: inline in the index
    old = s.create("old layout", {"template": "{s} [MASK]"})
    db.execute("UPDATE runs SET status='finished', result=? WHERE id=?",
               (json.dumps({"discrete": {"accuracy": 0.5}, "details": details}), old))
    db.commit()

    def not_here(*a, **k):
        raise AssertionError("list() read per-example results")
    with monkeypatch.context() as m:
        m.setattr(RunStore, "details", not_here)
        db.execute("BEGIN IMMEDIATE")  # another process is writing: readers must not wait
        t = time.monotonic()
        rows = s.list()
        assert time.monotonic() - t < 5
        db.rollback()
    assert [r["name"] for r in rows] == ["old layout", "run 2", "run 1", "run 0"]
    assert all("details" not in r["result"] for r in rows)
    assert [r["result"]["discrete"]["accuracy"] for r in rows] == [0.5, 1.0, 1.0, 1.0]
    assert s.get(ids[1])["result"]["details"] == details
    assert s.get(old)["result"]["details"] == details  # old stores stay readable
    assert "details" not in s.get(ids[1], details=False)["result"]
    s.delete(ids[1])
    assert not (tmp_path / ids[1]).exists()
    db.close()
