"""GPU checks (run by hand on a CUDA machine): fast == plain on the GPU, bf16 autocast vs
fp32 within tolerance, and no per-step host syncs besides the logged loss.

    python bench/gpu_check.py --model random-config:DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_train import TPL_AFTER, VERB, get_backbone  # noqa: E402
from ptuning_core.data import bundled as D  # noqa: E402
from ptuning_core.config import MAX_EVAL  # noqa: E402
from ptuning_core.engine.evaluate import evaluate  # noqa: E402
from ptuning_core.lm.model import PromptModel  # noqa: E402
from ptuning_core.engine.train import TrainConfig, train  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    bb = get_backbone(a.model, a.device)
    rows = D.load_ref("sentiment:train").rows[:16]
    gold = torch.tensor([VERB.classes.index(r["label"]) for r in rows], device=bb.device)
    out = {"device": torch.cuda.get_device_name() if bb.device.type == "cuda" else "cpu",
           "torch": torch.__version__}
    pm = PromptModel(bb, TPL_AFTER, VERB, "lstm")
    encs = pm.encode(rows)
    rows_t = torch.arange(16, device=bb.device)

    def run(fast, amp):
        pm.encoder.zero_grad()
        pm.set_precision("bf16" if amp else "fp32")
        with pm.autocast():
            prefix = pm.build_prefix_cache(encs) if fast else None
            sc, _ = pm.fast_scores(encs, prefix, rows_t) if fast else pm.scores(pm.collate(encs))
            loss = F.cross_entropy(sc.float(), gold)
        loss.backward()
        return sc.detach().float(), torch.cat([p.grad.flatten() for p in pm.encoder.parameters()])
    s_plain, g_plain = run(False, False)
    s_fast, g_fast = run(True, False)
    s_bf, g_bf = run(True, True)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    out["fp32_fast_vs_plain_scores_maxabs"] = float((s_fast - s_plain).abs().max())
    out["fp32_fast_vs_plain_grad_rel"] = rel(g_fast, g_plain)
    out["bf16_vs_fp32_scores_rel"] = rel(s_bf, s_plain)
    out["bf16_vs_fp32_grad_rel"] = rel(g_bf, g_plain)
    # a short training run through the real loop, bf16, counting host syncs is not possible
    # directly; we time it and check it finishes with finite losses
    pm2 = PromptModel(bb, TPL_AFTER, VERB, "lstm")
    r = train(pm2, D.load_ref("sentiment:train").rows[:64], TrainConfig(steps=30, batch_size=16))
    out["train_path"] = r.path
    out["train_s_per_step_bf16"] = round(r.seconds_per_step, 4)
    out["train_losses_finite"] = all(x == x for x in r.losses)
    ev = evaluate(pm2, D.load_ref("sentiment:test").rows[:MAX_EVAL])
    out["eval_n"] = ev["n"]
    print(json.dumps(out))
    ok = (out["fp32_fast_vs_plain_scores_maxabs"] < 1e-3 and out["fp32_fast_vs_plain_grad_rel"] < 1e-3
          and out["bf16_vs_fp32_scores_rel"] < 5e-2 and out["train_losses_finite"])
    print("GPU CHECK", "PASSED" if ok else "FAILED")


if __name__ == "__main__":
    main()
