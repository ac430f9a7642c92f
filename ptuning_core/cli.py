"""Command line: ``python -m ptuning_core
run|eval|predict|datasets|runs|export|import|fewshot|experiment|warmup``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

USAGE_ERR = 2


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return USAGE_ERR


class _Progress:
    def __init__(self, stream=sys.stderr):
        self.s = stream
        self.t0 = time.monotonic()
        self.phase = None

    def __call__(self, e: dict):
        t = e.get("type")
        if t == "phase":
            if e["phase"] != self.phase:
                self.phase = e["phase"]
                print(f"[{e['phase']}]", file=self.s, flush=True)
            if e.get("total"):
                end = "\n" if e["done"] >= e["total"] else ""
                print(f"\r  {e['done']}/{e['total']} examples", end=end, file=self.s,
                      flush=True)
        elif t == "discrete":
            print(f"discrete accuracy {e['accuracy']:.4f}", file=self.s, flush=True)
        elif t == "start":
            print(f"training {e['steps']} steps on {e['n_train']} examples ({e['path']} path, "
                  f"{e['trainable_parameters']} trainable parameters)", file=self.s, flush=True)
        elif t == "step":
            n, N = e["step"], e["steps"]
            w = 30
            fill = int(w * n / N)
            rate = n / e["seconds"] if e["seconds"] else 0
            eta = (N - n) / rate if rate else 0
            end = "\n" if n == N else ""
            print(f"\r[{'#' * fill}{'.' * (w - fill)}] {n}/{N} loss {e['loss']:.4f} "
                  f"{rate:.2f} step/s eta {eta:.0f}s", end=end, file=self.s, flush=True)
        elif t == "eval":
            print(f"\n  dev accuracy {e['dev_accuracy']:.4f} at step {e['step']}", file=self.s,
                  flush=True)
        elif t == "end" and e["status"] != "finished":
            print(f"\n{e['status']} after {e['steps']} steps", file=self.s, flush=True)


def _add_run_args(p):
    from ptuning_core.config import ENCODERS
    from ptuning_core.engine.train import TrainConfig
    d = TrainConfig()  # the one place that holds the defaults
    p.add_argument("--model", default="default",
                   help="'default' (embedded SmolLM2-135M-Instruct), a HF id, a folder or .gguf")
    p.add_argument("--train", required=True,
                   help="CSV/TSV/JSONL file, bundled NAME:SPLIT or hf:NAME[/CONFIG]:SPLIT")
    p.add_argument("--eval", required=True,
                   help="CSV/TSV/JSONL file, bundled NAME:SPLIT or hf:NAME[/CONFIG]:SPLIT")
    p.add_argument("--dev", help="dev file for evaluation during training")
    p.add_argument("--template", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--verbalizer", help='JSON: {"class": ["word", ...], ...}')
    g.add_argument("--label-space", choices=["vocab"],
                   help="open vocabulary: predict any token (precision@1)")
    p.add_argument("--discrete-template", help="default: to_discrete(template)")
    p.add_argument("--text-fields", default="auto",
                   help="comma-separated template fields, each optionally FIELD=COLUMN to read it "
                        "from another column; default: the template's fields")
    p.add_argument("--label-field", default=None,
                   help="label column (default: the bundled dataset's, else 'label')")
    p.add_argument("--shots", type=int, help="K examples per class (K in all for vocab)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--encoder", choices=list(ENCODERS), default=d.encoder)
    p.add_argument("--aux-weight", type=float, default=d.aux_weight)
    _add_label_args(p, d)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--max-eval", type=int, help="evaluate on the first N eval examples only")
    p.add_argument("--no-fast", action="store_true", help="disable the causal prefix cache")
    _add_precision_arg(p, d.precision)
    p.add_argument("--device", default="auto")
    p.add_argument("--name", default="")
    p.add_argument("--resume", help="continue training from this run's encoder weights")
    p.add_argument("--out", help="also copy the run's files to this folder")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")


def _add_label_args(p, d) -> None:
    from ptuning_core.config import LABEL_INITS, LABEL_TOKENS
    p.add_argument("--label-tokens", choices=list(LABEL_TOKENS), default=d.label_tokens,
                   help="words: score each class by its label words; learned: a trainable "
                        "vector per class, scored like a word")
    p.add_argument("--label-init", choices=list(LABEL_INITS), default=d.label_init,
                   help="learned label tokens start at the class's first label word, or at "
                        "random")


def _add_precision_arg(p, default):
    from ptuning_core.config import PRECISIONS
    p.add_argument("--precision", choices=list(PRECISIONS), default=default,
                   help="the frozen LM's forward: auto = bf16 on a GPU with bf16 or a CPU with "
                        "AVX-512 BF16/AMX, else fp32 (the prompt encoder always trains in fp32)")


def _spec_from_args(a):
    from ptuning_core.engine.experiment import RunSpec
    from ptuning_core.engine.train import TrainConfig
    from ptuning_core.lm.verbalizer import Verbalizer
    verb = Verbalizer.parse(a.verbalizer).to_dict() if a.verbalizer else None
    fields = None if a.text_fields in (None, "", "auto") else \
        [f.strip() for f in a.text_fields.split(",") if f.strip()]
    cfg = TrainConfig(steps=a.steps, lr=a.lr, batch_size=a.batch_size, seed=a.seed,
                      encoder=a.encoder, aux_weight=a.aux_weight, eval_every=a.eval_every,
                      patience=a.patience, fast=not a.no_fast, label_tokens=a.label_tokens,
                      label_init=a.label_init, precision=a.precision)
    return RunSpec(template=a.template, train=a.train, eval=a.eval, verbalizer=verb,
                   model=a.model, discrete_template=a.discrete_template, dev=a.dev,
                   text_fields=fields, label_field=a.label_field, shots=a.shots,
                   device=a.device, name=a.name, max_eval=a.max_eval, resume=a.resume,
                   train_cfg=cfg)


def _add_backend_arg(p) -> None:
    p.add_argument("--backend", choices=["local", "ray"], default=None,
                   help="where to run: this process, or a Ray pool at $PTUNING_RAY_ADDRESS (a "
                        "local Ray instance when unset); default: ray if PTUNING_RAY_ADDRESS is "
                        "set, else local")


def _ray_pool(a):
    """(backend name, Ray pool or None); BackendUnavailable (one line) if Ray cannot be used."""
    backend = a.backend or ("ray" if os.environ.get("PTUNING_RAY_ADDRESS", "").strip()
                            else "local")
    if backend == "local":
        return backend, None
    from ptuning_core.executors.raybackend import pool
    return backend, pool()


def cmd_run(a) -> int:
    import shutil

    from ptuning_core.lm.backbone import ModelLoadError
    from ptuning_core.engine.experiment import USER_ERRORS, prepare, submit_and_run
    from ptuning_core.store.runs import RunStore
    try:
        spec = _spec_from_args(a)
        prep = prepare(spec)
    except USER_ERRORS as e:
        return _err(str(e))
    for w in prep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    from ptuning_core.executors.raybackend import BackendUnavailable, WorkerLost
    try:
        backend, ray = _ray_pool(a)
    except BackendUnavailable as e:
        return _err(str(e))
    store = RunStore()
    try:
        if ray is None:
            res = submit_and_run(spec, store, owner="cli", callback=_Progress(), prepared=prep)
        else:
            from ptuning_core.executors.raybackend import run_recorded
            rid = store.create(spec.name or spec.template[:60], spec.to_dict(), "cli")
            res = run_recorded(ray, spec, store, rid, prep, callback=_Progress())
    except WorkerLost as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ModelLoadError as e:
        return _err(str(e))
    except USER_ERRORS as e:
        return _err(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    for w in res.get("warnings", []):
        if w not in prep.warnings:
            print(f"warning: {w}", file=sys.stderr)
    res["backend"] = backend
    if ray is not None:
        res["workers"] = 1
    if a.out:
        shutil.copytree(res["run_dir"], a.out, dirs_exist_ok=True)
        with open(os.path.join(a.out, "result.json"), "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)
    if a.json:
        print(json.dumps(res))
    else:
        _print_scores(res)
        print(f"run {res['run_dir']}")
    return 0


def _print_scores(res: dict) -> None:
    """The text form of a result: both prompts with their intervals, the paired verdict, the
    nearest tokens (runs) and accuracy per tag."""
    from ptuning_core.stats import fmt_acc, result_verdict, seed_note
    d, c = res["discrete"], res["continuous"]
    print(f"model {res['model']} ({res['kind']}, {res['device']})")
    print(f"discrete   {fmt_acc(d['accuracy'], d['ci95'])}  n={d['n']}  {d['template']}")
    if c:
        print(f"continuous {fmt_acc(c['accuracy'], c['ci95'])}  n={c['n']}  {c['template']}")
        if result_verdict(res):
            print(result_verdict(res))
        if res.get("train") and res.get("seed") is not None:
            print(seed_note(res, res["seed"]))
        for i, row in enumerate(res.get("nearest_tokens") or []):
            print(f"  P{i}: " + ", ".join(f"{t['token']!r} {t['cosine']:.2f}" for t in row))
        lt = res.get("label_tokens")
        for c, moved, row in zip((lt or {}).get("classes", []), (lt or {}).get("cosine_to_init",
                                                                              []),
                                 (lt or {}).get("nearest", [])):
            print(f"  label {c} (cosine to start {moved:.2f}): "
                  + ", ".join(f"{t['token']!r} {t['cosine']:.2f}" for t in row))
    for tag, by in sorted((res.get("by_tag") or {}).get("continuous", {}).items()):
        dd = res["by_tag"]["discrete"].get(tag)
        print(f"  tag {tag:12s} n={by['n']:<4d} continuous {fmt_acc(by['accuracy'], by['ci95'])}"
              + (f"  discrete {fmt_acc(dd['accuracy'], dd['ci95'])}" if dd else ""))


def _use_prompt(a):
    """(learned prompt, backbone) for ``eval`` / ``predict``: the prompt's own model."""
    from ptuning_core.engine.learned import load_prompt, model_name
    from ptuning_core.lm.registry import get_backbone
    lp = load_prompt(a.prompt)
    return lp, get_backbone(model_name(lp, a.model), a.device)


def cmd_eval(a) -> int:
    from ptuning_core.lm.backbone import ModelLoadError
    from ptuning_core.engine.experiment import USER_ERRORS
    from ptuning_core.engine.learned import evaluate_prompt
    try:
        lp, bb = _use_prompt(a)
        ref, max_eval = a.eval, a.max_eval
        if ref is None:
            if lp.eval_ref is None:
                return _err(f"{a.prompt} does not say what it was evaluated on; give --eval")
            ref = lp.eval_ref
            max_eval = lp.max_eval if max_eval is None else max_eval
        fields = [f.strip() for f in a.text_fields.split(",") if f.strip()] \
            if a.text_fields else None
        ev = evaluate_prompt(lp, bb, ref, max_eval, fields, a.label_field, callback=_Progress())
    except (ModelLoadError, *USER_ERRORS) as e:
        return _err(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    res = ev.to_dict()
    for w in res["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if a.json:
        print(json.dumps(res))
    else:
        _print_scores(res)
        print(f"prompt {lp.source} on {ref}" + (f" (first {max_eval})" if max_eval else ""))
    return 0


def cmd_predict(a) -> int:
    from ptuning_core.lm.backbone import ModelLoadError
    from ptuning_core.data.bundled import DataError
    from ptuning_core.engine.experiment import USER_ERRORS
    from ptuning_core.engine.learned import predict, prompt_model
    try:
        lp, bb = _use_prompt(a)
        fields = {}
        for entry in a.field or []:
            name, eq, value = entry.partition("=")
            if not eq or not name.strip():
                raise DataError(f"'{entry}' is not NAME=VALUE")
            fields[name.strip()] = value
        if a.text is not None:
            if len(lp.fields) != 1:
                raise DataError(f"this template has {len(lp.fields)} fields "
                                f"({', '.join(lp.fields)}): give each with --field NAME=VALUE")
            fields.setdefault(lp.fields[0], a.text)
        pred = predict(lp, prompt_model(lp, bb), fields)
    except (ModelLoadError, *USER_ERRORS) as e:
        return _err(str(e))
    if a.json:
        print(json.dumps(pred.to_dict()))
        return 0
    print(f"prediction: {pred.top}")
    width = max(len(x) for x in pred.labels)
    for label, p in zip(pred.labels, pred.probs):
        print(f"  {label:{width}s}  {p:.4f}  {'#' * round(40 * p)}")
    return 0


def cmd_datasets(a) -> int:
    from ptuning_core.data import bundled as D
    m = D.manifest()
    if a.json:
        print(json.dumps(m))
        return 0
    for name in sorted(m):
        info = m[name]
        print(f"{name:22s} {info['task']:9s} splits: {', '.join(info['files'])}  "
              f"- {info['description']}")
    return 0


def cmd_runs(a) -> int:
    from ptuning_core.store.runs import RunStore
    rows = RunStore().list()
    if a.json:
        print(json.dumps([{k: r[k] for k in ("id", "name", "status", "created")} for r in rows]))
        return 0
    for r in rows:
        res = r["result"] or {}
        acc = (res.get("continuous") or {}).get("accuracy")
        print(f"{r['id']}  {r['status']:11s} {'' if acc is None else f'{acc:.3f}':6s} {r['name']}")
    return 0


def cmd_export(a) -> int:
    from ptuning_core.engine.portable import PromptFileError, export_prompt
    from ptuning_core.store.runs import RunStore
    try:
        path = export_prompt(RunStore(), a.run_id, a.file)
    except PromptFileError as e:
        return _err(str(e))
    print(path)
    return 0


def cmd_import(a) -> int:
    from ptuning_core.engine.portable import PromptFileError, import_prompt
    from ptuning_core.store.runs import RunStore
    try:
        rid = import_prompt(RunStore(), a.file, model=a.model)
    except PromptFileError as e:
        return _err(str(e))
    print(rid)
    return 0


def _int_list(text: str, what: str) -> list:
    from ptuning_core import config as C
    return C.parse_list("seed" if "seed" in what else "k", text)


def cmd_fewshot(a) -> int:
    from ptuning_core.lm.backbone import ModelLoadError
    from ptuning_core.engine.experiment import USER_ERRORS
    from ptuning_core.engine.fewshot import SweepSpec, run_sweep, summarize, sweep_inputs
    from ptuning_core.executors.raybackend import BackendUnavailable

    def show(e):
        if e.get("type") != "cell":
            return
        acc = "failed" if e["accuracy"] is None else f"{e['accuracy']:.4f}"
        print(f"{e['method']:10s} k={e['k']:<3d} seed={e['seed']:<4d} acc={acc}",
              file=sys.stderr)
    try:
        spec = SweepSpec(dataset=a.dataset, template=a.template, model=a.model,
                         ks=_int_list(a.k, "--k"), seeds=_int_list(a.seeds, "--seeds"),
                         methods=a.methods.split(","), steps=a.steps, lr=a.lr,
                         max_eval=a.max_eval, device=a.device, label_tokens=a.label_tokens,
                         label_init=a.label_init, precision=a.precision)
        if a.backend == "ray" or (a.backend is None and
                                  os.environ.get("PTUNING_RAY_ADDRESS", "").strip()):
            sweep_inputs(spec)  # user errors before Ray starts
        backend, ray = _ray_pool(a)
        if ray is None:
            rows = run_sweep(spec, callback=show)
        else:
            from ptuning_core.executors.raybackend import run_sweep as ray_sweep
            rows = ray_sweep(ray, spec, callback=show)
    except (ModelLoadError, BackendUnavailable, *USER_ERRORS) as e:
        return _err(str(e))
    summary = summarize(rows)
    if a.json:
        out = {"rows": rows, "summary": summary, "backend": backend}
        if ray is not None:
            out["workers"] = len({r["worker"] for r in rows if r.get("worker") is not None})
        print(json.dumps(out))
    else:
        for s in summary:
            print(f"{s['method']:10s} k={s['k']:<3d} {s['mean']:.4f} ± {s['std']:.4f} "
                  f"(n={s['n']})")
    return 0


def cmd_experiment(a) -> int:
    """One of the method's claims (E1-E6) as an experiment: the cells, the table with
    intervals, and the sentence computed from the numbers; stored (kind 'experiment')."""
    from ptuning_core.engine import experiments as X
    from ptuning_core.lm.backbone import ModelLoadError
    from ptuning_core.engine.experiment import USER_ERRORS
    from ptuning_core.executors.raybackend import BackendUnavailable
    from ptuning_core.store.runs import RunStore
    if a.list:
        items = X.listing()
        if a.json:
            print(json.dumps(items))
            return 0
        for e in items:
            sm = e["presets"]["small"]
            print(f"{e['id']}  {e['short']:20s} {e['title']}  [{e['dataset']}; small: k="
                  f"{','.join(map(str, sm['ks']))}, {len(sm['seeds'])} seeds, "
                  f"{sm['steps']} steps]\n    claim: {e['claim']}")
        return 0
    if not a.name:
        return _err("name an experiment (E1..E6, see --list)")
    try:
        req = X.ExperimentRequest(
            a.name, preset=a.preset, model=a.model, device=a.device, dataset=a.dataset,
            seeds=_int_list(a.seeds, "--seeds") if a.seeds else None,
            ks=_int_list(a.k, "--k") if a.k else None, steps=a.steps, max_eval=a.max_eval)
        plan = X.plan(req)
        print(f"{plan.experiment.id}: {plan.experiment.title} on {plan.dataset}, "
              f"{plan.n_cells} runs", file=sys.stderr)
        progress = _Progress()

        def on_event(e):
            if e.get("type") == "cell":
                if e.get("arm"):
                    print(f"[{e['done'] + 1}/{e['total']}] {e['arm']} k={e['k']} "
                          f"seed={e['seed']}", file=sys.stderr, flush=True)
            elif e.get("type") in ("start", "step", "end"):
                progress(e)
        backend, ray = _ray_pool(a)
        res = X.run(plan, callback=on_event, pool=ray)
    except (ModelLoadError, BackendUnavailable, *USER_ERRORS) as e:
        return _err(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    rid = X.record(RunStore(), "cli", req, res)
    summary, sentence = X.summarize(res), X.conclude(plan.experiment, res)
    if a.json:
        print(json.dumps({"id": rid, "experiment": plan.experiment.id, "status": res["status"],
                          "settings": res["settings"], "summary": summary,
                          "sentence": sentence, "backend": backend,
                          **({"workers": ray.size} if ray is not None else {})}))
        return 0
    from ptuning_core.stats import fmt_acc
    for r in summary:
        extra = f"  steps to 90%: {r['steps_to_90']:g}" if r.get("steps_to_90") else ""
        print(f"k={r['k']:<4d} {r['arm']:26s} {fmt_acc(r['accuracy'], r['ci95'])}  n={r['n']}  "
              f"seeds {r['seed_mean']:.3f} ± {r['seed_std']:.3f}{extra}")
    print(sentence)
    print(f"experiment {rid}")
    return 0


def cmd_warmup(a) -> int:
    from ptuning_core.lm.backbone import ModelLoadError, load_backbone
    try:
        bb = load_backbone(a.model, a.device)
    except ModelLoadError as e:
        return _err(str(e))
    print(f"{a.model}: {bb.kind} LM, {bb.n_parameters / 1e6:.0f}M parameters, loaded from "
          f"{bb.source} in {bb.load_seconds:.1f}s on {bb.device}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    from ptuning_core import config as C
    from ptuning_core.engine.fewshot import DEFAULT_METHODS, METHODS
    from ptuning_core.engine.train import TrainConfig
    p = argparse.ArgumentParser(prog="python -m ptuning_core",
                                description="P-tuning Studio: continuous prompts for a frozen LM")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="evaluate a discrete template, P-tune the continuous one")
    _add_run_args(r)
    _add_backend_arg(r)
    r.set_defaults(fn=cmd_run)
    d = sub.add_parser("datasets", help="list the bundled datasets")
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_datasets)
    s = sub.add_parser("runs", help="list stored runs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_runs)
    e = sub.add_parser("export", help="export a run's learned prompt (safetensors + JSON)")
    e.add_argument("run_id")
    e.add_argument("file", help="output .safetensors path")
    e.set_defaults(fn=cmd_export)
    i = sub.add_parser("import", help="import a prompt file exported by this tool")
    i.add_argument("file")
    i.add_argument("--model", default=None, help="check it against this model")
    i.set_defaults(fn=cmd_import)
    v = sub.add_parser("eval", help="evaluate a learned prompt (a run or a prompt file) "
                                    "without its encoder")
    v.add_argument("prompt", metavar="RUN_ID_OR_FILE")
    v.add_argument("--eval", help="CSV/TSV/JSONL file, bundled NAME:SPLIT or "
                                  "hf:NAME[/CONFIG]:SPLIT; default: the run's own (and its "
                                  "--max-eval)")
    v.add_argument("--max-eval", type=int, help="evaluate on the first N examples only")
    v.add_argument("--text-fields", help="FIELD=COLUMN entries, comma-separated, when the "
                                         "data's columns have other names")
    v.add_argument("--label-field", help="label column (default: the run's, or the bundled "
                                         "dataset's)")
    v.add_argument("--model", help="check: the model the prompt was learned on")
    v.add_argument("--device", default="auto")
    v.add_argument("--json", action="store_true", help="print the result as one JSON line")
    v.set_defaults(fn=cmd_eval)
    pr = sub.add_parser("predict", help="class probabilities (or top-5 tokens) of one example "
                                        "through a learned prompt")
    pr.add_argument("prompt", metavar="RUN_ID_OR_FILE")
    pr.add_argument("--text", help="the text of a template with one field")
    pr.add_argument("--field", action="append", metavar="NAME=VALUE",
                    help="one template field (repeat for each)")
    pr.add_argument("--model", help="check: the model the prompt was learned on")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--json", action="store_true", help="print one JSON line")
    pr.set_defaults(fn=cmd_predict)
    f = sub.add_parser("fewshot", help="few-shot sweep: methods x k x seeds")
    f.add_argument("--dataset", required=True, help="bundled classification dataset name")
    f.add_argument("--template", help="default: the dataset's P-tuning template (manifest)")
    f.add_argument("--model", default="default")
    f.add_argument("--k", default=",".join(map(str, C.FEWSHOT_KS)))
    f.add_argument("--seeds", default=",".join(map(str, C.SEEDS[:C.N_SEEDS])))
    f.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated, from: {', '.join(METHODS)} (lora and full-finetune "
                        f"train a copy of the model through the discrete template)")
    f.add_argument("--steps", type=int, default=TrainConfig().steps)
    f.add_argument("--lr", type=float, default=TrainConfig().lr)
    f.add_argument("--max-eval", type=int, default=C.MAX_EVAL)
    _add_label_args(f, TrainConfig())
    f.add_argument("--device", default="auto")
    _add_precision_arg(f, TrainConfig().precision)
    f.add_argument("--json", action="store_true")
    _add_backend_arg(f)
    f.set_defaults(fn=cmd_fewshot)
    x = sub.add_parser("experiment", help="one of the method's claims (E1-E6) as an "
                                          "experiment, with a sentence computed from its numbers")
    x.add_argument("name", nargs="?", metavar="NAME", help="E1..E6 or its short name")
    x.add_argument("--list", action="store_true", help="list the experiments and presets")
    x.add_argument("--preset", default="small", choices=["small", "full"],
                   help="small: a few minutes on 2 CPU cores; full: for a GPU")
    x.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    x.add_argument("--k", help="comma-separated examples per class (default: the preset's)")
    x.add_argument("--steps", type=int, help="training steps per run (default: the preset's)")
    x.add_argument("--max-eval", type=int, help="test examples (default: the preset's)")
    x.add_argument("--dataset", help="bundled classification dataset (default: the "
                                     "experiment's)")
    x.add_argument("--model", default="default")
    x.add_argument("--device", default="auto")
    x.add_argument("--json", action="store_true")
    _add_backend_arg(x)
    x.set_defaults(fn=cmd_experiment)
    w = sub.add_parser("warmup", help="load a model once (builds the default model's cache)")
    w.add_argument("--model", default="default")
    w.add_argument("--device", default="auto")
    w.set_defaults(fn=cmd_warmup)
    a = p.parse_args(argv)
    bad = _check_numbers(a)
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    return a.fn(a)


# flag -> the range it is checked with (ptuning_core/config.py, the same as the door and pages)
NUMBER_FLAGS = {"seed": "seed", "steps": "steps", "lr": "lr", "batch_size": "batch_size",
                "shots": "shots", "max_eval": "max_eval", "eval_every": "eval_every",
                "aux_weight": "aux_weight"}


def _check_numbers(a) -> str:
    """The numeric flags, checked against the ranges before anything loads: '' or one line."""
    from ptuning_core import config as C
    from ptuning_core.engine.train import ConfigError
    for flag, name in NUMBER_FLAGS.items():
        v = getattr(a, flag, None)
        if v is None:
            continue
        try:
            C.check(name, v)
        except ConfigError as e:
            return f"--{flag.replace('_', '-')}: {e}"
    for flag, name in (("k", "k"), ("seeds", "seed")):
        v = getattr(a, flag, None)
        if isinstance(v, str) and a.cmd in ("fewshot", "experiment"):
            try:
                C.parse_list(name, v)
            except ConfigError as e:
                return f"--{flag}: {e}"
    return ""
