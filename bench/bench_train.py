"""Benchmark: training step time (PEFT P-tuning vs this project's plain and fast paths),
evaluation throughput, default-model load time and peak memory. Run by hand:

    python bench/bench_train.py [--json] [--device auto|cpu|cuda] [--steps 6] [--batch 16]

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ptuning_core import data as D  # noqa: E402
from ptuning_core.backbone import Backbone, load_backbone, resolve_device  # noqa: E402
from ptuning_core.evaluate import _autocast, evaluate  # noqa: E402
from ptuning_core.model import PromptModel  # noqa: E402
from ptuning_core.verbalizer import Verbalizer  # noqa: E402

VERB = Verbalizer.parse({"negative": ["terrible"], "positive": ["great"]})
N_PSEUDO = 8
TPL_AFTER = "{sentence} [P*8] It was [MASK]"
TPL_START = "[P*8] {sentence} It was [MASK]"
DISCRETE = "{sentence} It was [MASK]"


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
    return load_backbone(spec, device)


def our_step(pm, encs, gold, cfg_fast, dev, amp):
    """One optimisation step of this project's loop, plain or fast path."""
    params = [p for p in pm.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    prefix = pm.build_prefix_cache(encs) if cfg_fast else None
    rows = torch.arange(len(encs), device=dev)

    def step():
        with _autocast(pm, amp):
            if cfg_fast:
                sc, _ = pm.fast_scores(encs, prefix, rows)
            else:
                sc, _ = pm.scores(pm.collate(encs))
            loss = F.cross_entropy(sc.float(), gold)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    amp = not a.no_amp
    torch.manual_seed(0)
    res = {"device": None, "model": a.model, "batch": a.batch, "pseudo_tokens": N_PSEUDO,
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
           platform.machine(), "cores": os.cpu_count()}
    if not a.skip_load and a.model == "default":
        from ptuning_core.backbone import _load_gguf, default_gguf_path
        t = time.perf_counter()
        _load_gguf(default_gguf_path())
        res["load_gguf_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        load_backbone("default", "cpu")
        res["load_cache_s"] = round(time.perf_counter() - t, 2)
    bb = get_backbone(a.model, a.device)
    dev = bb.device
    res["device"] = str(dev) + (f" ({torch.cuda.get_device_name()})" if dev.type == "cuda" else "")
    res["amp_bf16"] = amp and dev.type == "cuda"
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
        out[name] = median_step(our_step(pm, encs, gold, use_fast, dev, amp), dev, a.warmup,
                                a.steps)
        out[name + "_path"] = "fast" if use_fast else "plain"
    step, n_peft = peft_step(bb, rows, gold, dev, amp)
    out["peft"] = median_step(step, dev, a.warmup, a.steps)
    step, _ = peft_step(bb, long_rows, gold, dev, amp)
    out["peft_long"] = median_step(step, dev, a.warmup, a.steps)
    res["mean_tokens"] = round(lens[0], 1)
    res["mean_tokens_long"] = round(lens[4], 1)
    res["s_per_step"] = {k: round(v, 4) for k, v in out.items() if not k.endswith("_path")}
    res["peft_trainable_parameters"] = n_peft
    res["peft_over_fast"] = round(out["peft"] / out["fast"], 2)
    res["plain_over_fast"] = round(out["plain"] / out["fast"], 2)
    res["peft_over_fast_start"] = round(out["peft"] / out["fast_start"], 2)
    res["start_template_path"] = out["fast_start_path"]
    res["plain_over_fast_long"] = round(out["plain_long"] / out["fast_long"], 2)
    res["peft_over_fast_long"] = round(out["peft_long"] / out["fast_long"], 2)
    # ---- evaluation throughput ----
    ev = D.load_ref("sentiment:test").rows[:a.eval_n]
    t = time.perf_counter()
    acc_base = eval_all_logits(bb, ev, dev)
    sync(dev)
    base_s = time.perf_counter() - t
    t = time.perf_counter()
    acc_naive = eval_all_logits_per_example(bb, ev, dev)
    sync(dev)
    naive_s = time.perf_counter() - t
    dpm = PromptModel(bb, DISCRETE, VERB, "none")
    t = time.perf_counter()
    acc_ours = evaluate(dpm, ev, amp=amp)["accuracy"]
    sync(dev)
    ours_s = time.perf_counter() - t
    res["eval_examples_per_s"] = {"hf_all_logits_per_example": round(len(ev) / naive_s, 1),
                                  "hf_all_logits_batched": round(len(ev) / base_s, 1),
                                  "ours": round(len(ev) / ours_s, 1)}
    res["eval_speedup"] = round(naive_s / ours_s, 2)
    res["eval_speedup_batched"] = round(base_s / ours_s, 2)
    res["eval_accuracy"] = {"hf_all_logits_per_example": acc_naive,
                            "hf_all_logits_batched": acc_base, "ours": acc_ours}
    res["peak_rss_bench_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if not a.skip_rss and a.model == "default":
        res["peak_rss_cli_train_mb"] = round(peak_rss_cli())
    # ---- table ----
    sp = res["s_per_step"]
    print(f"device {res['device']}, batch {a.batch}, {N_PSEUDO} pseudo tokens, "
          f"~{res['mean_tokens']} tokens/input, median of {a.steps} steps after {a.warmup} warm-up")
    print(f"{'method':34s} {'s/step':>8s}")
    for k, label in (("peft", "PEFT P-tuning (LSTM, prepended)"),
                     ("plain", "ours, plain path (P after input)"),
                     ("fast", "ours, fast path (P after input)"),
                     ("plain_start", "ours, plain (P at start)"),
                     ("fast_start", f"ours, {res['start_template_path']} (P at start)"),
                     ("peft_long", f"PEFT, ~{res['mean_tokens_long']:.0f}-token inputs"),
                     ("plain_long", f"ours, plain, ~{res['mean_tokens_long']:.0f}-token inputs"),
                     ("fast_long", f"ours, fast, ~{res['mean_tokens_long']:.0f}-token inputs")):
        print(f"{label:34s} {sp[k]:8.3f}")
    print(f"PEFT/fast {res['peft_over_fast']}x  plain/fast {res['plain_over_fast']}x  "
          f"PEFT/ours at start {res['peft_over_fast_start']}x")
    print(f"long inputs: PEFT/fast {res['peft_over_fast_long']}x  plain/fast "
          f"{res['plain_over_fast_long']}x")
    e = res["eval_examples_per_s"]
    print(f"eval ex/s: HF all-logits per example {e['hf_all_logits_per_example']}, batched "
          f"{e['hf_all_logits_batched']}, ours {e['ours']} ({res['eval_speedup']}x, "
          f"{res['eval_speedup_batched']}x)")
    if "load_gguf_s" in res:
        print(f"default model load: GGUF {res['load_gguf_s']} s, cache {res['load_cache_s']} s")
    if "peak_rss_cli_train_mb" in res:
        print(f"peak RSS: CLI training run {res['peak_rss_cli_train_mb']} MB")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
