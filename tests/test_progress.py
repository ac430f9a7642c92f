"""Every phase of a run reports what it is doing and how far it is (no silent minute)."""
from ptuning_core.engine.experiment import RunSpec, run_experiment
from ptuning_core.engine.train import TrainConfig
from ui.common import progress_line


def test_run_reports_progress_in_every_phase(monkeypatch):
    from ptuning_core.lm import registry
    from tiny import tiny_causal
    bb = tiny_causal()
    bb.name = "tiny-progress"
    registry.put(bb)
    events = []
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer={"negative": ["terrible"],
                                                      "positive": ["great"]},
                   model="tiny-progress", shots=4, max_eval=70,
                   train_cfg=TrainConfig(steps=4, batch_size=4, eval_every=2, snapshot_every=0))
    run_experiment(spec, callback=events.append)
    phases = [e for e in events if e["type"] == "phase"]
    for name in ("discrete", "dev evaluation", "evaluate"):
        mine = [e for e in phases if e["phase"] == name and "total" in e]
        assert mine, name
        assert mine[-1]["done"] == mine[-1]["total"]
    disc = [e["done"] for e in phases if e["phase"] == "discrete" and "done" in e]
    assert disc == sorted(disc) and len(disc) >= 3  # 70 examples in batches of 32


def test_progress_line_names_each_phase():
    assert progress_line({"phase": "discrete", "phase_done": 32, "phase_total": 200})[1] == \
        "evaluating the discrete prompt: 32/200 examples"
    assert "preparing" in progress_line({"phase": "train", "steps": 60})[1]
    frac, text = progress_line({"phase": "train", "step": 30, "steps": 60, "seconds": 15.0,
                                "loss": 0.5})
    assert frac == 0.5 and "ETA 15s" in text
    frac, text = progress_line({"phase": "train", "step": 30, "steps": 60, "seconds": 15.0},
                               stopping=True)
    assert text == "stopping after step 30/60…" and "ETA" not in text
