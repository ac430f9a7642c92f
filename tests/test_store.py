import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ptuning_core.portable import PromptFileError, export_prompt, import_prompt, read_prompt_file
from ptuning_core.store import RunStore, StoreError


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
        from ptuning_core.store import RunStore
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
