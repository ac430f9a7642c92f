"""Benchmark: training step time (PEFT P-tuning vs this project's plain and fast paths),
bf16 vs fp32 (step time and accuracy over seeds), a classroom run end to end through the
Service, co-batched runs, evaluation throughput, default-model load time and peak memory.
Run by hand:

    python bench/bench_train.py [--json] [--quick] [--seeds 5] [--device auto|cpu|cuda]
                                [--steps 6] [--batch 16] [--cobatch 1,4,16]

``--quick`` skips the slow baselines (PEFT, the per-example evaluation, the default model's load
times and the CLI's peak memory).

All figures come from one process on the same data, batch and pseudo-token count; ratios are
against baselines measured in the same run. The last stdout line is one JSON object.
``--model random-config:DIR`` builds a randomly initialised model from DIR's config.json and
tokenizer (for machines that do not have the default model's weights; timings only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ptuning_core import config as C  # noqa: E402
from ptuning_core.data import bundled as D  # noqa: E402
from ptuning_core.lm.backbone import Backbone, load_backbone, resolve_device  # noqa: E402
from ptuning_core.lm.cobatch import CoRun, cobatched_losses, cobatched_step  # noqa: E402
from ptuning_core.engine.evaluate import evaluate  # noqa: E402
from ptuning_core.lm.model import PromptModel  # noqa: E402
from ptuning_core.lm.precision import cpu_has_bf16, resolve_precision  # noqa: E402
from ptuning_core.engine.train import TrainConfig  # noqa: E402
from ptuning_core.lm.verbalizer import Verbalizer  # noqa: E402

VERB = Verbalizer.parse({"negative": ["terrible"], "positive": ["great"]})
N_PSEUDO = 8
TPL_AFTER = "{sentence} [P*8] It was [MASK]"
TPL_START = "[P*8] {sentence} It was [MASK]"
DISCRETE = "{sentence} It was [MASK]"
TPL_START_DEFAULT = "[P*4] {sentence} It was [MASK]"  # the bundled sentiment set's default
TPL_AFTER_DEFAULT = "{sentence} [P*4] It was [MASK]"


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def median_step(fn, dev, warmup, steps):
    for _ in range(warmup):
        fn()
    sync(dev)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def get_backbone(spec: str, device: str) -> Backbone:
    if spec.startswith("random-config:"):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        d = spec.split(":", 1)[1]
        cfg = AutoConfig.from_pretrained(d)
        torch.manual_seed(0)
        m = AutoModelForCausalLM.from_config(cfg).eval()
        for p in m.parameters():
            p.requires_grad_(False)
        dev = resolve_device(device)
        try:
            tok = AutoTokenizer.from_pretrained(d)
        except Exception:  # an older transformers: read tokenizer.json directly
            from transformers import PreTrainedTokenizerFast
            tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(d) / "tokenizer.json"),
                                          eos_token="<|im_end|>", bos_token="<|im_start|>",
                                          unk_token="<|endoftext|>")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        return Backbone(spec, m.to(dev), tok, "causal", dev)
    from ptuning_core.lm.registry import get_backbone as registered
    return registered(spec, device)  # the Service's runs use the same loaded model


def our_step(pm, encs, gold, cfg_fast, dev, precision):
    """One optimisation step of this project's loop, plain or fast path."""
    params = [p for p in pm.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    pm.set_precision(precision)
    with pm.autocast():
        prefix = pm.build_prefix_cache(encs) if cfg_fast else None
    rows = torch.arange(len(encs), device=dev)

    def step():
        with pm.autocast():
            if cfg_fast:
                sc, _ = pm.fast_scores(encs, prefix, rows)
            else:
                sc, _ = pm.scores(pm.collate(encs))
            loss = F.cross_entropy(sc.float(), gold)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def step_flops(step) -> int:
    """FLOPs of one call of ``step`` (forward and backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        step()
    return fc.get_total_flops()


def matmul_rate(bb, tokens: int, reps: int = 5) -> float:
    """fp32 FLOP/s of the model's own matrix shapes (hidden x hidden, hidden x MLP, MLP x
    hidden) at ``tokens`` rows, on this CPU now: the arithmetic limit a step is held to."""
    cfg = bb.model.config
    h = bb.hidden_size
    m = getattr(cfg, "intermediate_size", None) or 4 * h
    x, xm = torch.randn(tokens, h), torch.randn(tokens, m)
    ws = [(x, torch.randn(h, h)), (x, torch.randn(h, m)), (xm, torch.randn(m, h))]
    for a_, w in ws:
        a_ @ w
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for a_, w in ws:
            a_ @ w
        best = min(best, time.perf_counter() - t)
    flops = sum(2 * a_.shape[0] * a_.shape[1] * w.shape[1] for a_, w in ws)
    return flops / best


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peft_step(bb, rows, gold, dev, amp):
    from peft import PromptEncoderConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    # a separate copy of the frozen LM for PEFT to wrap
    model = AutoModelForCausalLM.from_config(bb.model.config)
    model.load_state_dict(bb.model.state_dict())
    model.to(dev).eval()
    cfg = PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_PSEUDO,
                              encoder_reparameterization_type="LSTM",
                              encoder_hidden_size=bb.hidden_size)
    pm = get_peft_model(model, cfg)
    tok = bb.tokenizer
    tok.padding_side = "left"
    texts = [f"{r['sentence']} It was" for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
    ids = [tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("terrible", "great")]
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    on = amp and dev.type == "cuda"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on) if on else \
                torch.autocast("cpu", enabled=False):
            out = pm(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
            lp = torch.log_softmax(out.logits[:, -1].float(), -1)[:, ids]
            loss = F.cross_entropy(lp, gold)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    n_train = sum(p.numel() for p in params)
    return step, n_train


def eval_all_logits_per_example(bb, rows, dev):
    """Naive baseline: one example at a time, logits at every position."""
    tok = bb.tokenizer
    ids = [tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("terrible", "great")]
    correct = 0
    with torch.no_grad():
        for r in rows:
            enc = tok(f"{r['sentence']} It was", return_tensors="pt",
                      add_special_tokens=False).to(dev)
            logits = bb.model(**enc).logits
            correct += ["negative", "positive"][int(logits[0, -1, ids].argmax())] == r["label"]
    return correct / len(rows)


def eval_all_logits(bb, rows, dev, batch=32):
    """Baseline evaluation: a plain HF forward that computes logits at every position."""
    tok = bb.tokenizer
    tok.padding_side = "left"
    ids = [tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("terrible", "great")]
    correct = 0
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            part = rows[s:s + batch]
            enc = tok([f"{r['sentence']} It was" for r in part], return_tensors="pt",
                      padding=True, add_special_tokens=False).to(dev)
            logits = bb.model(**enc).logits
            pred = logits[:, -1, ids].argmax(-1).tolist()
            correct += sum(["negative", "positive"][p] == r["label"] for p, r in zip(pred, part))
    return correct / len(rows)


def peak_rss_cli(timeout=900) -> float:
    """Peak RSS (MB) of a short default-model CLI training run, in a child process."""
    code = ("import resource,subprocess,sys;"
            "r=subprocess.run([sys.executable,'-m','ptuning_core','run','--train','sentiment:train',"
            "'--eval','sentiment:test','--template','{sentence} [P*8] It was [MASK]','--verbalizer',"
            "'{\"negative\":[\"terrible\"],\"positive\":[\"great\"]}','--shots','16','--steps','10',"
            "'--batch-size','16','--max-eval','100','--json'],capture_output=True);"
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    rc, kb = out.stdout.split()
    if rc != "0":
        raise RuntimeError("CLI run failed")
    return int(kb) / 1024


# ---- bf16 vs fp32 -------------------------------------------------------------------------
def precision_step_ratio(bb, rows, gold, dev, tpl, warmup, steps):
    """(fp32 s/step, bf16 s/step) of this project's step on ``tpl`` (fast path if possible)."""
    out = {}
    for prec in ("fp32", "bf16"):
        pm = PromptModel(bb, tpl, VERB, "lstm")
        encs = pm.encode(rows)
        out[prec] = median_step(our_step(pm, encs, gold, pm.fast_path_possible(encs), dev, prec),
                                dev, warmup, steps)
    return out["fp32"], out["bf16"]


def accuracy_by_precision(seeds: list, max_eval: int) -> dict:
    """Test accuracy of the continuous prompt after a default run (k=16, TrainConfig's
    defaults), fp32 and bf16, same seeds, on the bundled sentiment set and facts-capital."""
    from ptuning_core.engine.experiment import RunSpec, run_experiment
    out = {}
    for name in ("sentiment", "facts-capital"):
        info = D.dataset_info(name)
        acc = {"fp32": [], "bf16": []}
        for seed in seeds:
            for prec in ("fp32", "bf16"):
                spec = RunSpec(template=info["ptuning_templates"]["causal"], train=f"{name}:train",
                               eval=f"{name}:test", verbalizer=info.get("verbalizer"),
                               shots=16, max_eval=max_eval, device="cpu",
                               train_cfg=TrainConfig(seed=seed, precision=prec,
                                                     snapshot_every=0))
                acc[prec].append(run_experiment(spec)["continuous"]["accuracy"])
                print(f"  {name} seed {seed} {prec}: {acc[prec][-1]:.3f}", file=sys.stderr,
                      flush=True)
        d = [b - a for a, b in zip(acc["fp32"], acc["bf16"])]
        out[name] = {"fp32": acc["fp32"], "bf16": acc["bf16"],
                     "fp32_mean": round(statistics.fmean(acc["fp32"]), 4),
                     "fp32_std": round(statistics.pstdev(acc["fp32"]), 4),
                     "bf16_mean": round(statistics.fmean(acc["bf16"]), 4),
                     "bf16_std": round(statistics.pstdev(acc["bf16"]), 4),
                     "delta_mean": round(statistics.fmean(d), 4)}
    return out


# ---- a classroom run as the user waits for it -----------------------------------------------
# The default run before issue 21/22 (template and TrainConfig as they were), kept runnable so
# that classroom_speedup compares against it in the same bench run.
OLD_DEFAULT = {"template": TPL_START_DEFAULT, "steps": 60, "lr": 3e-3, "batch_size": 8}


def _cold(svc_root: Path):
    """Caches cold: a fresh store (no cached discrete baseline), no shared prefixes."""
    from ptuning_core.lm.kvcache import SHARED
    from ptuning_core.service import Service
    from ptuning_core.store.runs import RunStore
    SHARED.clear()
    return Service(store=RunStore(svc_root))


def _spec(tpl, n_eval, **cfg):
    from ptuning_core.engine.experiment import RunSpec
    info = D.dataset_info("sentiment")
    return RunSpec(template=tpl, train="sentiment:train", eval="sentiment:test",
                   verbalizer=info["verbalizer"], shots=16, max_eval=n_eval, device="cpu",
                   train_cfg=TrainConfig(**cfg))


def _wait(jobs: list, t0: float) -> list:
    """(finished after, first loss after) per job, seconds from ``t0``, polled every 20 ms."""
    first, end = [None] * len(jobs), [None] * len(jobs)
    while not all(e is not None for e in end):
        now = time.perf_counter() - t0
        for i, j in enumerate(jobs):
            if first[i] is None and j.progress.get("step"):
                first[i] = round(now, 2)
            if end[i] is None and j.done:
                end[i] = round(now, 2)
                if j.status != "finished":
                    raise RuntimeError(f"classroom run {j.status}: {j.error}")
        time.sleep(0.02)
    return list(zip(end, first))


def classroom_runs(max_eval: int, profile: bool, class_size: int = 5) -> dict:
    """Request submitted to the Service -> run finished (k=16, discrete and continuous evaluated
    on ``max_eval`` sentiment test examples), the model already loaded, as a student waits:
    * ``old``: the default before issues 21/22 (``OLD_DEFAULT``), caches cold;
    * ``new``: today's default (the manifest's template, ``TrainConfig()``), caches cold;
    * ``second``: a second student, same settings (the discrete baseline and the examples'
      prefixes are shared);
    * ``after``: the old settings with the pseudo tokens after the input, caches cold;
    * ``class_of_5``: five students submitting the default run at once, caches cold.
    With ``profile`` the old and new runs' time is split by section (profiling.py)."""
    import tempfile
    from ptuning_core import profiling
    info = D.dataset_info("sentiment")
    new_tpl = info["ptuning_templates"]["causal"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    out, prof = {}, {}

    def one(svc, who, spec, key=None):
        if key and profile:
            profiling.start()
        t0 = time.perf_counter()
        job = svc._core.queue.get(svc.runs.train(who, spec).id)
        (total, first), = _wait([job], t0)
        if key and profile:
            prof[key] = profiling.stop()
            prof[key]["total"] = {"seconds": total, "calls": 1}
        return total, first

    svc = _cold(tmp / "warm")
    one(svc, "warm", _spec(new_tpl, 8, steps=2))  # warm-up: data, tokenizer, threads
    svc.close()
    old = {k: v for k, v in OLD_DEFAULT.items() if k != "template"}
    svc = _cold(tmp / "old")
    out["old"] = one(svc, "s1", _spec(OLD_DEFAULT["template"], max_eval, **old), "old")
    svc.close()
    svc = _cold(tmp / "after")
    out["after"] = one(svc, "s1", _spec(TPL_AFTER_DEFAULT, max_eval, **old))
    svc.close()
    svc = _cold(tmp / "new")
    out["new"] = one(svc, "s1", _spec(new_tpl, max_eval), "new")
    out["second"] = one(svc, "s2", _spec(new_tpl, max_eval), "second")
    svc.close()
    if class_size:
        svc = _cold(tmp / "five")
        t0 = time.perf_counter()
        jobs = [svc._core.queue.get(svc.runs.train(f"student{i}", _spec(new_tpl, max_eval)).id)
                for i in range(class_size)]
        got = _wait(jobs, t0)
        out["class_of_5"] = (max(e for e, _ in got), [f for _, f in got])
        svc.close()
    out["template_new"] = new_tpl
    out["profile"] = prof
    return out


# ---- co-batching ----------------------------------------------------------------------------
def cobatch_runs(bb, n: int, precision: str, batch: int = 8) -> list:
    """n runs of the default sentiment setting (alternately the default template and the one
    with pseudo tokens after the input), each its own encoder, optimizer and k=16 sample."""
    info = D.dataset_info("sentiment")
    verb = type(VERB).parse(info["verbalizer"])
    train_all = D.load_ref("sentiment:train").rows
    runs = []
    for i in range(n):
        tpl = (TPL_START_DEFAULT, TPL_AFTER_DEFAULT)[i % 2]
        pm = PromptModel(bb, tpl, verb, "lstm", seed=13 + i)
        pm.set_precision(precision)
        tr, _ = D.sample_k_shot(train_all, 16, 13 + i, "label")
        encs = pm.encode(tr)
        gold = torch.tensor(pm.gold_ids([r["label"] for r in tr]), device=bb.device)
        with pm.autocast():
            prefix = pm.build_prefix_cache(encs) if pm.fast_path_possible(encs) else None
        g = torch.Generator().manual_seed(i)
        opt = torch.optim.AdamW([p for p in pm.encoder.parameters()], lr=3e-3)
        runs.append({"pm": pm, "encs": encs, "gold": gold, "prefix": prefix, "gen": g,
                     "opt": opt})
    return runs


def _batch(r, batch):
    rows = torch.randperm(len(r["encs"]), generator=r["gen"])[:batch]
    return CoRun(r["pm"], [r["encs"][int(i)] for i in rows], r["gold"][rows], r["prefix"],
                 rows if r["prefix"] is not None else None, r["opt"], 1.0)


def _solo_loss(c: CoRun):
    with c.pm.autocast():
        if c.prefix is not None:
            sc, _ = c.pm.fast_scores(c.encs, c.prefix, c.rows)
        else:
            sc, _ = c.pm.scores(c.pm.collate(c.encs))
        return F.cross_entropy(sc.float(), c.gold)


def solo_step(c: CoRun) -> float:
    loss = _solo_loss(c)
    c.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(c.pm.encoder.parameters()), c.clip)
    c.optimizer.step()
    return float(loss.detach())


def cobatch_speedup(bb, ns: list, steps: int, precision: str, batch: int = 8) -> dict:
    """Aggregate run-steps/s co-batched over one run after another, per number of runs."""
    out = {}
    for n in ns:
        runs = cobatch_runs(bb, n, precision, batch)
        for r in runs:  # warm-up
            solo_step(_batch(r, batch))
        cobatched_step([_batch(r, batch) for r in runs])
        t = time.perf_counter()
        for _ in range(steps):
            for r in runs:
                solo_step(_batch(r, batch))
        seq = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(steps):
            cobatched_step([_batch(r, batch) for r in runs])
        co = time.perf_counter() - t
        out[n] = {"sequential_steps_per_s": round(n * steps / seq, 3),
                  "cobatched_steps_per_s": round(n * steps / co, 3),
                  "speedup": round(seq / co, 2)}
        print(f"  co-batch {n}: {out[n]}", file=sys.stderr, flush=True)
    return out


def cobatch_loss_diff(bb, n: int = 4, batch: int = 8) -> float:
    """Max |co-batched loss - solo loss| over n runs' first step, fp32, on the real model."""
    runs = cobatch_runs(bb, n, "fp32", batch)
    batches = [_batch(r, batch) for r in runs]
    with torch.no_grad():
        co = [float(x) for x in cobatched_losses(batches)]
        solo = [float(_solo_loss(c)) for c in batches]
    return max(abs(a - b) for a, b in zip(co, solo))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-n", type=int, default=C.MAX_EVAL)
    ap.add_argument("--no-amp", action="store_true", help="fp32 also on CUDA in the step table")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="skip the slow baselines (PEFT, per-example evaluation, load, RSS)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the bf16 accuracy delta")
    ap.add_argument("--cobatch", default="1,4,16", help="numbers of concurrent runs")
    ap.add_argument("--cobatch-steps", type=int, default=3)
    ap.add_argument("--bf16", action="store_true",
                    help="measure bf16 also where it is not native (slow: emulated)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="split the classroom runs' time by section (load, cache build, step "
                         "forward / backward / optimizer, evaluations, store writes)")
    ap.add_argument("--skip-cobatch", action="store_true")
    ap.add_argument("--class-size", type=int, default=5,
                    help="students submitting the default run at once (0: skip class_of_5_s)")
    a = ap.parse_args()
    torch.manual_seed(0)
    res = {"device": None, "model": a.model, "batch": a.batch, "pseudo_tokens": N_PSEUDO,
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
           platform.machine(), "cores": os.cpu_count(), "quick": a.quick,
           "cpu_bf16": cpu_has_bf16(), "cpu_model": cpu_model()}
    if not a.quick and not a.skip_load and a.model == "default":
        from ptuning_core.lm.backbone import _load_gguf, default_gguf_path
        t = time.perf_counter()
        _load_gguf(default_gguf_path())
        res["load_gguf_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        load_backbone("default", "cpu")
        res["load_cache_s"] = round(time.perf_counter() - t, 2)
    bb = get_backbone(a.model, a.device)
    dev = bb.device
    res["device"] = str(dev) + (f" ({torch.cuda.get_device_name()})" if dev.type == "cuda" else "")
    res["precision_auto"] = resolve_precision("auto", dev)
    # the step table compares like with like: fp32 on the CPU, bf16 autocast on CUDA
    table_prec = "bf16" if dev.type == "cuda" and not a.no_amp else "fp32"
    res["step_table_precision"] = table_prec
    rows = D.load_ref("sentiment:train").rows[:a.batch]
    gold = torch.tensor([VERB.classes.index(r["label"]) for r in rows], device=dev)
    lens = []
    out = {}
    all_rows = D.load_ref("sentiment:train").rows
    long_rows = [{"sentence": f"{a['sentence']} {b['sentence']}", "label": a["label"]}
                 for a, b in zip(all_rows[:a.batch], all_rows[a.batch:2 * a.batch])]
    for name, tpl, fast, data in (("plain", TPL_AFTER, False, rows),
                                  ("fast", TPL_AFTER, True, rows),
                                  ("plain_start", TPL_START, False, rows),
                                  ("fast_start", TPL_START, True, rows),
                                  ("plain_long", TPL_AFTER, False, long_rows),
                                  ("fast_long", TPL_AFTER, True, long_rows)):
        pm = PromptModel(bb, tpl, VERB, "lstm")
        encs = pm.encode(data)
        lens.append(statistics.mean(len(e.ids) for e in encs))
        use_fast = fast and pm.fast_path_possible(encs)
        step = our_step(pm, encs, gold, use_fast, dev, table_prec)
        out[name] = median_step(step, dev, a.warmup, a.steps)
        out[name + "_path"] = "fast" if use_fast else "plain"
        if name in ("plain_start", "fast") and dev.type == "cpu":
            fl = step_flops(step)
            rate = matmul_rate(bb, sum(len(e.ids) for e in encs))
            res.setdefault("step_flops_g", {})[name] = round(fl / 1e9, 1)
            res.setdefault("matmul_gflops", {})[name] = round(rate / 1e9, 1)
            res.setdefault("step_efficiency", {})[name] = round(fl / rate / out[name], 3)
    if not a.quick:
        step, n_peft = peft_step(bb, rows, gold, dev, table_prec == "bf16")
        out["peft"] = median_step(step, dev, a.warmup, a.steps)
        step, _ = peft_step(bb, long_rows, gold, dev, table_prec == "bf16")
        out["peft_long"] = median_step(step, dev, a.warmup, a.steps)
        res["peft_trainable_parameters"] = n_peft
        res["peft_over_fast"] = round(out["peft"] / out["fast"], 2)
        res["peft_over_fast_start"] = round(out["peft"] / out["fast_start"], 2)
        res["peft_over_fast_long"] = round(out["peft_long"] / out["fast_long"], 2)
    res["mean_tokens"] = round(lens[0], 1)
    res["mean_tokens_long"] = round(lens[4], 1)
    res["s_per_step"] = {k: round(v, 4) for k, v in out.items() if not k.endswith("_path")}
    res["plain_over_fast"] = round(out["plain"] / out["fast"], 2)
    res["start_template_path"] = out["fast_start_path"]
    res["plain_over_fast_long"] = round(out["plain_long"] / out["fast_long"], 2)
    # ---- bf16 vs fp32: step time at the default batch (8) ----
    # Only where bf16 is native: emulated bf16 (a CPU without AVX-512 BF16 / AMX) runs a step
    # ~25x slower than fp32 and `auto` never picks it there, so the figures would mean nothing.
    b8 = TrainConfig().batch_size
    do_bf16 = res["precision_auto"] == "bf16" or a.bf16
    if not do_bf16:
        res["bf16_skipped"] = "no native bf16 on this device (auto = fp32); --bf16 forces it"
    else:
        f32, b16 = precision_step_ratio(bb, rows[:b8], gold[:b8], dev, TPL_START_DEFAULT,
                                        a.warmup, a.steps)
        f32f, b16f = precision_step_ratio(bb, rows[:b8], gold[:b8], dev, TPL_AFTER_DEFAULT,
                                          a.warmup, a.steps)
        res["s_per_step_precision"] = {"default_template_fp32": round(f32, 4),
                                       "default_template_bf16": round(b16, 4),
                                       "after_template_fp32": round(f32f, 4),
                                       "after_template_bf16": round(b16f, 4)}
        res["bf16_over_fp32"] = round(f32 / b16, 2)  # > 1: the bf16 step is this much faster
        res["bf16_over_fp32_after_template"] = round(f32f / b16f, 2)
    # ---- evaluation throughput ----
    ev = D.load_ref("sentiment:test").rows[:a.eval_n]
    t = time.perf_counter()
    acc_base = eval_all_logits(bb, ev, dev)
    sync(dev)
    base_s = time.perf_counter() - t
    dpm = PromptModel(bb, DISCRETE, VERB, "none")
    evaluate(dpm, ev[:8], precision="fp32")  # warm-up
    t = time.perf_counter()
    acc_ours = evaluate(dpm, ev, precision="fp32", reuse=False)["accuracy"]
    sync(dev)
    ours_s = time.perf_counter() - t
    evaluate(dpm, ev[:8], precision="auto")
    t = time.perf_counter()
    acc_auto = evaluate(dpm, ev, precision="auto", reuse=False)["accuracy"]
    sync(dev)
    auto_s = time.perf_counter() - t
    res["eval_examples_per_s"] = {"hf_all_logits_batched": round(len(ev) / base_s, 1),
                                  "ours_fp32": round(len(ev) / ours_s, 1),
                                  "ours_auto": round(len(ev) / auto_s, 1)}
    res["eval_speedup_batched"] = round(base_s / ours_s, 2)  # both fp32
    res["eval_speedup_batched_auto"] = round(base_s / auto_s, 2)
    res["eval_accuracy"] = {"hf_all_logits_batched": acc_base, "ours_fp32": acc_ours,
                            "ours_auto": acc_auto}
    if not a.quick:
        t = time.perf_counter()
        acc_naive = eval_all_logits_per_example(bb, ev, dev)
        sync(dev)
        naive_s = time.perf_counter() - t
        res["eval_examples_per_s"]["hf_all_logits_per_example"] = round(len(ev) / naive_s, 1)
        res["eval_speedup"] = round(naive_s / ours_s, 2)
        res["eval_accuracy"]["hf_all_logits_per_example"] = acc_naive
    # ---- co-batching ----
    if not a.skip_cobatch:
        ns = [int(x) for x in a.cobatch.split(",") if x.strip()]
        cb = cobatch_speedup(bb, ns, a.cobatch_steps, "auto")
        res["cobatch"] = cb
        res["cobatch_speedup"] = {n: v["speedup"] for n, v in cb.items()}
        res["cobatch_max_loss_diff"] = float(f"{cobatch_loss_diff(bb):.2e}")
    # ---- a classroom run end to end (the headline) ----
    if a.model == "default":
        cr = classroom_runs(a.eval_n, a.profile, a.class_size)
        res["classroom_template"] = cr["template_new"]
        res["classroom_run_s"], res["first_loss_s"] = cr["new"]
        res["classroom_run_second_s"] = cr["second"][0]
        res["classroom_run_old_default_s"], res["first_loss_old_default_s"] = cr["old"]
        res["classroom_speedup"] = round(cr["old"][0] / cr["new"][0], 2)
        res["classroom_run_start_s"] = cr["old"][0]  # the old default starts with [P*4]
        res["classroom_run_after_s"], res["first_loss_after_s"] = cr["after"]
        if "class_of_5" in cr:
            res["class_of_5_s"], res["class_of_5_first_loss_s"] = cr["class_of_5"]
            res["class_of_5_over_one"] = round(cr["class_of_5"][0] / cr["new"][0], 2)
        if a.profile:
            res["profile"] = cr["profile"]
        # ---- accuracy, bf16 vs fp32 ----
        if do_bf16:
            seeds = [*C.SEEDS, 7, 3][:a.seeds]
            acc = accuracy_by_precision(seeds, a.eval_n)
            res["bf16_accuracy"] = acc
            res["bf16_accuracy_delta"] = {k: v["delta_mean"] for k, v in acc.items()}
            res["bf16_accuracy_seeds"] = len(seeds)
    res["peak_rss_bench_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if not a.quick and not a.skip_rss and a.model == "default":
        res["peak_rss_cli_train_mb"] = round(peak_rss_cli())
    # ---- table ----
    sp = res["s_per_step"]
    print(f"device {res['device']}, batch {a.batch}, {N_PSEUDO} pseudo tokens, "
          f"~{res['mean_tokens']} tokens/input, median of {a.steps} steps after {a.warmup} "
          f"warm-up, {table_prec}")
    print(f"{'method':34s} {'s/step':>8s}")
    for k, label in (("peft", "PEFT P-tuning (LSTM, prepended)"),
                     ("plain", "ours, plain path (P after input)"),
                     ("fast", "ours, fast path (P after input)"),
                     ("plain_start", "ours, plain (P at start)"),
                     ("fast_start", f"ours, {res['start_template_path']} (P at start)"),
                     ("peft_long", f"PEFT, ~{res['mean_tokens_long']:.0f}-token inputs"),
                     ("plain_long", f"ours, plain, ~{res['mean_tokens_long']:.0f}-token inputs"),
                     ("fast_long", f"ours, fast, ~{res['mean_tokens_long']:.0f}-token inputs")):
        if k in sp:
            print(f"{label:34s} {sp[k]:8.3f}")
    if "peft_over_fast" in res:
        print(f"PEFT/fast {res['peft_over_fast']}x  PEFT/ours at start "
              f"{res['peft_over_fast_start']}x  long: PEFT/fast {res['peft_over_fast_long']}x")
    print(f"plain/fast {res['plain_over_fast']}x  long: plain/fast {res['plain_over_fast_long']}x")
    if do_bf16:
        print(f"bf16: step fp32/bf16 {res['bf16_over_fp32']}x (default template, batch {b8}), "
              f"{res['bf16_over_fp32_after_template']}x (P after input)")
    else:
        print(f"bf16: skipped ({res['bf16_skipped']})")
    e = res["eval_examples_per_s"]
    print(f"eval ex/s: HF all-logits batched {e['hf_all_logits_batched']}, ours fp32 "
          f"{e['ours_fp32']} ({res['eval_speedup_batched']}x), auto {e['ours_auto']}")
    if "cobatch_speedup" in res:
        print(f"co-batching, aggregate speed-up over one after another: "
              f"{res['cobatch_speedup']}; max loss difference (fp32) "
              f"{res['cobatch_max_loss_diff']}")
    if "classroom_run_s" in res:
        print(f"classroom run: default before issue 21 {res['classroom_run_old_default_s']} s, "
              f"default now ({res['classroom_template']}) {res['classroom_run_s']} s "
              f"(first loss {res['first_loss_s']} s): {res['classroom_speedup']}x; a second "
              f"student {res['classroom_run_second_s']} s; old settings with P after the input "
              f"{res['classroom_run_after_s']} s; class of 5 at once {res.get('class_of_5_s')} s "
              f"(first losses {res.get('class_of_5_first_loss_s')})")
        for key, sec in (res.get("profile") or {}).items():
            print(f"profile, {key} run:")
            for name, v in sorted(sec.items(), key=lambda x: -x[1]["seconds"]):
                print(f"  {name:24s} {v['seconds']:8.2f} s  {v['calls']:5d} calls")
        if do_bf16:
            print(f"bf16 - fp32 accuracy over {res['bf16_accuracy_seeds']} seeds: "
                  f"{res['bf16_accuracy_delta']}")
    if "load_gguf_s" in res:
        print(f"default model load: GGUF {res['load_gguf_s']} s, cache {res['load_cache_s']} s")
    if "peak_rss_cli_train_mb" in res:
        print(f"peak RSS: CLI training run {res['peak_rss_cli_train_mb']} MB")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
