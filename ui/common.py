"""State, sidebar, data selection, live job view and charts shared by the pages."""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ptuning_core.api import (DEFAULT_LABEL, DEFAULT_MODEL, USER_ERRORS, DataError,
                              ModelLoadError, ranges)
from ptuning_core.stats import fmt_pct
# The session's service, its identity and its dataset are one layer down (ui/state.py,
# ui/classroom.py); the pages import them from here as before.
from ui.classroom import session_id  # noqa: F401
from ui.state import dataset_context, service  # noqa: F401

ROLE_COLORS = {"field": "#dbeafe", "text": "#e5e7eb", "anchor": "#fde68a", "pseudo": "#c4b5fd",
               "mask": "#fca5a5", "special": "#f3f4f6"}
ROLE_NAMES = {"field": "example text", "text": "discrete word", "anchor": "anchor",
              "pseudo": "pseudo token", "mask": "label slot", "special": "special"}
SHARE_KEYS = {"t": "template", "d": "dataset", "m": "model", "steps": "steps", "lr": "lr",
              "enc": "encoder", "k": "shots", "seed": "seed"}


def backend_banner() -> None:
    """One line at the top of every page when this server's job backend (Ray) cannot take
    runs: they are refused, not run elsewhere."""
    err = service().info().backend_error
    if err:
        st.error(f"Training is unavailable on this server: {err}", icon=":material/cloud_off:")


def backbone(name: str | None = None):
    """The shared frozen model (one per process); None with an error shown if it fails."""
    name = name or st.session_state.get("model", DEFAULT_MODEL)
    try:
        with st.spinner(f"Loading {name}…"):
            return service().backbone(name)
    except ModelLoadError as e:
        st.error(str(e))
        return None


def restore_from_link() -> None:
    """Apply a shared link's query parameters once per browser session."""
    if st.session_state.get("_restored"):
        return
    st.session_state["_restored"] = True
    qp = st.query_params
    for short, key in SHARE_KEYS.items():
        if short in qp:
            v = qp[short]
            if key in ("steps", "shots", "seed", "lr"):
                v, err = ranges.parse(key, v, service().info().max_steps
                                      if key == "steps" else None)
                if err:  # one line on the page, the page's own value stays
                    st.session_state.setdefault("_link_msgs", []).append(
                        f"The link's {short}={str(qp[short])[:40]} was ignored: {err}.")
                    continue
            elif key == "template" and len(v) > ranges.MAX_TEMPLATE_CHARS:
                st.session_state.setdefault("_link_msgs", []).append(
                    f"The link's template was ignored: it is {len(v)} characters long; "
                    f"{ranges.range_text('template_chars')}.")
                continue
            if key == "template":  # Template Studio opens it; the pages use it once it compiles
                st.session_state["template_input"] = v
                st.session_state["_tpl_from_link"] = True
                st.session_state["_tpl_link"] = v  # checked by page_setup or Template Studio
                continue
            st.session_state[key] = v


def share_query(**current) -> str:
    """The query string of a link that opens these settings (``current``: what the page shows,
    e.g. the template it uses when none was typed in this session, over the session's)."""
    from urllib.parse import urlencode
    values = {key: st.session_state.get(key) for key in SHARE_KEYS.values()} | current
    q = {short: values[key] for short, key in SHARE_KEYS.items()
         if values.get(key) not in (None, "")}
    return urlencode(q)


def link_settings(page: str, fields: dict) -> None:
    """A page's own shareable settings from its link (Compare, Few-shot), once per session and
    page: ``fields`` maps a query parameter to (session key, reader); a reader is a range name,
    (range name, per-server maximum) or a function returning (value, error line). A value that
    does not read is refused with one line naming the range and the page's own value stays
    (the same ranges and words as Train's); the lines are shown here, once."""
    done = st.session_state.setdefault("_link_pages", [])
    if page in done:
        return
    done.append(page)
    qp, lines = st.query_params, []
    for short, (key, reader) in fields.items():
        if short not in qp:
            continue
        raw = qp[short]
        if callable(reader):
            v, err = reader(raw)
        else:
            name, hi = reader if isinstance(reader, tuple) else (reader, None)
            v, err = ranges.parse(name, raw, hi)
        if err:
            lines.append(f"The link's {short}={str(raw)[:40]} was ignored: {err}.")
        else:
            st.session_state[key] = v
    # restore_from_link read the same names for Train; this page's own reading is the one shown
    mine = tuple(f"The link's {short}=" for short in fields)
    rest = [m for m in st.session_state.pop("_link_msgs", []) if not m.startswith(mine)]
    for line in rest + lines:
        st.warning(line)


def number_field(where, label: str, key: str, name: str, default, hi=None, **kw):
    """A number input drawn from the range ``name`` (ptuning_core/config.py; ``hi`` a lower
    per-server maximum), starting at the session's ``key`` (a link, the last visit) moved into
    the range, so the widget never gets a value it would raise on; its value is kept under
    ``key`` (also while the page is not open)."""
    lo, top = ranges.bounds(name)
    top = top if hi is None else min(top, hi)
    v = st.session_state.get(key, default)
    try:
        v = ranges.clamp(name, float(v), hi)
    except (TypeError, ValueError, OverflowError):
        v = ranges.clamp(name, float(default), hi)
    if not ranges.RANGES[name][2]:
        lo, top = float(lo), float(top)
    out = where.number_input(label, lo, top, v, key=f"w_{key}", **kw)
    st.session_state[key] = out
    return out


def page_link(path: str, params: dict, template: str | None = None) -> str:
    """The link that opens ``path`` with these settings: the page's own ``params`` with the
    template, dataset and model of the session (what ``share_query`` carries besides Train's
    numbers)."""
    from urllib.parse import urlencode
    values = {"t": template or st.session_state.get("template"),
              "d": st.session_state.get("dataset"), "m": st.session_state.get("model")}
    q = {k: v for k, v in values.items() if v not in (None, "")} | params
    return f"{base_url()}/{path}?{urlencode(q)}"


PAGE_PATHS = ("studio", "train", "runs", "compare", "embeddings", "fewshot", "board",
              "experiments")


def app_root(url: str) -> str:
    """The app's root URL from the current page's URL (``http://h:8501/train?x`` ->
    ``http://h:8501``), so printed links are absolute from the app root, never page-relative."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    if last in PAGE_PATHS:
        path = path[: -len(last)].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}" if parts.netloc else path


def base_url() -> str:
    url = getattr(st.context, "url", None)
    return app_root(url) if isinstance(url, str) and url else ""


def page_setup(title: str):
    """Title, then (service, session id, backbone, dataset context, current template);
    stops the page with the error shown when the model or the data is not usable."""
    st.title(title)
    svc, sid = service(), session_id()
    bb, ctx = backbone(), dataset_context()
    if bb is None or ctx is None:
        st.stop()
    link_template(bb, ctx)
    template = st.session_state.get("template") or ctx["ptuning_templates"][bb.kind]
    return svc, sid, bb, ctx, template


def link_template(bb, ctx: dict) -> None:
    """A template from a link obeys the Studio's rule: only a template that compiles goes to
    the pages that run it. One that does not is shown with its error (here, and in Template
    Studio, which holds it for editing), never run; the page keeps the last one that worked."""
    src = st.session_state.pop("_tpl_link", None)
    if src is None:
        return
    try:
        view = service().inspect.studio(st.session_state.get("model", DEFAULT_MODEL), src,
                                ctx["fields"], None, (ctx.get("rows") or [{}])[0])
        error = view.error
    except (ModelLoadError, *USER_ERRORS) as e:
        error = str(e)
    if not error:
        st.session_state["template"] = src
        return
    st.warning(f"The link's template `{src[:80]}` does not compile ({error}); it is open in "
               f"Template Studio to fix, and this page uses the last template that worked.")


def verbalizer_for(ctx: dict):
    """The verbalizer edited in Template Studio, or the dataset's (None: open vocabulary)."""
    return None if ctx["vocab"] else st.session_state.get("verbalizer", ctx["verbalizer"])


# ---- sidebar --------------------------------------------------------------------------------
def sidebar() -> None:
    svc = service()
    info = svc.info()
    with st.sidebar:
        # First, before anything that may st.rerun(): a widget not drawn in a finished run
        # loses its state, so the name is also kept under a key no widget owns.
        if "author" not in st.session_state:
            st.session_state["author"] = st.session_state.get("_author", "")
        st.text_input("Your name (shown on the queue and the class board)", key="author",
                      max_chars=40)
        st.session_state["_author"] = st.session_state["author"]
        st.markdown("### Model")
        choices = svc.model_choices()
        cur = st.session_state.get("model", DEFAULT_MODEL)
        if cur not in choices:
            choices = choices + [cur]
        st.session_state["model"] = cur
        label = {DEFAULT_MODEL: DEFAULT_LABEL}
        st.selectbox("Frozen language model", choices, key="model",
                     format_func=lambda m: label.get(m, m))
        if info.other_models:
            other = st.text_input("…or a Hugging Face id, folder or .gguf file", key="model_other",
                                  placeholder="e.g. bert-base-uncased")
            if other and st.button("Use this model"):
                try:
                    svc.check_model(other)
                    st.session_state["model"] = other
                    st.rerun()
                except ModelLoadError as e:
                    st.error(str(e))
        bb = backbone()
        if bb is not None:
            st.caption(f"{bb.kind} LM · {bb.n_parameters / 1e6:.0f}M parameters · {bb.device}")
        if info.backend_text:  # runs and sweeps train elsewhere
            st.caption(f"Training on {info.backend_text}")
        st.markdown("### Dataset")
        names = svc.data.datasets()
        up, hf = st.session_state.get("upload"), st.session_state.get("hfdata")
        cd = st.session_state.get("class_data")
        opts = names + [d["name"] for d in (up, hf, cd) if d]
        if "_dataset_next" in st.session_state:  # chosen by a button below on the last run
            st.session_state["dataset"] = st.session_state.pop("_dataset_next")
        cur_ds = st.session_state.get("dataset", "sentiment")
        if cur_ds not in opts:
            cur_ds = "sentiment"
        st.session_state["dataset"] = cur_ds
        st.selectbox("Data", opts, key="dataset")
        ctx = dataset_context()
        if ctx:
            st.caption(ctx["description"])
        with st.expander("Upload CSV / TSV / JSONL"):
            f = st.file_uploader("Your data", type=["csv", "tsv", "jsonl"], key="upload_file")
            if f is not None:
                try:
                    cols = svc.data.upload_columns(f.getvalue(), f.name)
                    tf = st.multiselect("Text column(s)", cols, default=cols[:1], key="up_text")
                    lf = st.selectbox("Label column", cols, index=len(cols) - 1, key="up_label")
                    if st.button("Use this file") and tf:
                        st.session_state["upload"] = svc.data.save_upload(
                            session_id(), f.getvalue(), f.name, tf, lf)
                        st.session_state["_dataset_next"] = st.session_state["upload"]["name"]
                        st.rerun()
                except DataError as e:
                    st.error(str(e))
        with st.expander("Hugging Face dataset"):
            st.caption("Read from this machine's datasets cache, e.g. hf:glue/sst2:train and "
                       "hf:glue/sst2:validation[:500].")
            tr = st.text_input("Training split", key="hf_train", placeholder="hf:glue/sst2:train")
            ev = st.text_input("Evaluation split", key="hf_eval",
                               placeholder="hf:glue/sst2:validation")
            tf = st.text_input("Text column(s), comma-separated", key="hf_text", value="sentence")
            lf = st.text_input("Label column", key="hf_label", value="label")
            if st.button("Use this dataset") and tr:
                try:
                    st.session_state["hfdata"] = svc.data.open_hf_dataset(
                        tr.strip(), (ev or tr).strip(), tf.split(","), lf.strip())
                    st.session_state["_dataset_next"] = st.session_state["hfdata"]["name"]
                    st.rerun()
                except DataError as e:
                    st.error(str(e))


# ---- template display -----------------------------------------------------------------------
def token_strip_html(strip: list) -> str:
    """The Studio's token strip (``StripToken``s) coloured by role, with a legend."""
    spans = []
    for t in strip:
        tok = html.escape(t.text).replace(" ", "␣")
        spans.append(f'<span title="{ROLE_NAMES[t.role]}" style="background:'
                     f'{ROLE_COLORS[t.role]};padding:2px 4px;margin:1px;border-radius:4px;'
                     f'font-family:monospace;display:inline-block">{tok}</span>')
    legend = " ".join(f'<span style="background:{ROLE_COLORS[r]};padding:1px 6px;'
                      f'border-radius:4px;font-size:0.8em">{n}</span>'
                      for r, n in ROLE_NAMES.items() if r != "special")
    return f'<div class="token-strip">{"".join(spans)}</div><div style="margin-top:4px">{legend}</div>'


def error_html(src: str, pos: int) -> str:
    pos = max(0, min(pos, len(src)))
    a, b, c = src[:pos], src[pos:pos + 1] or " ", src[pos + 1:]
    return (f'<code>{html.escape(a)}<mark style="background:#f87171">{html.escape(b)}</mark>'
            f'{html.escape(c)}</code>')


# ---- charts ---------------------------------------------------------------------------------
def loss_figure(series: dict, dev: dict | None = None, title: str = "Training loss") -> go.Figure:
    """Loss curves; dev accuracy (when there is any) in a second panel sharing the step axis."""
    from plotly.subplots import make_subplots
    has_dev = any(pts for pts in (dev or {}).values())
    fig = make_subplots(rows=2 if has_dev else 1, cols=1, shared_xaxes=True,
                        row_heights=[0.68, 0.32] if has_dev else [1.0], vertical_spacing=0.06)
    for name, pts in series.items():
        if pts:
            xs, ys = zip(*pts)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name), row=1, col=1)
    for name, pts in (dev or {}).items():
        if pts:
            xs, ys = zip(*pts)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{name} dev accuracy",
                                     marker=dict(size=8, symbol="diamond")), row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    if has_dev:
        fig.update_yaxes(title_text="dev acc.", range=[0, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="step", row=2 if has_dev else 1, col=1)
    fig.update_layout(title=title, height=380 if has_dev else 320,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def confusion_figure(conf: list, classes: list, title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=conf, x=classes, y=classes, colorscale="Blues",
                               text=conf, texttemplate="%{text}"))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="gold", height=300,
                      margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed")  # first class on top: the correct cells on the diagonal
    return fig


# ---- live job view --------------------------------------------------------------------------
# Live panels read the service's shared snapshot (``Service.live``: one for every open page,
# rebuilt only when the queue changed) and poll at the pace their job changes: a running job
# about once per training step (1-5 s), a waiting one less often the longer its wait, a done
# job not at all. When what a panel shows moves to another of these states it reruns the page
# once, which declares its fragment again with the new interval (Streamlit sets a fragment's
# ``run_every`` where the page calls it).
def job_interval(view) -> float | None:
    """Seconds between a job panel's refreshes for this job (None: it does not poll)."""
    if view is None or view.done:
        return None
    if view.status == "queued":
        return 3.0 if view.start_in_s is None else min(10.0, max(2.0, view.start_in_s / 10))
    per_step = view.seconds / view.step if view.step and view.seconds else 1.0
    return min(5.0, max(1.0, per_step))


def eta_text(seconds: float | None, at: float | None = None) -> str:
    """``~4 min (12:31)`` for an estimate in seconds from ``at`` (a wall-clock time)."""
    import time as _t
    if seconds is None:
        return "not known yet"
    left = max(0.0, seconds - (_t.time() - at) if at else seconds)
    when = _t.strftime("%H:%M", _t.localtime(_t.time() + left))
    if left < 60:
        return f"in under a minute ({when})"
    mins = round(left / 60)
    return (f"in ~{mins} min" if mins < 60 else f"in ~{mins // 60} h {mins % 60:02d} min") + \
        f" ({when})"


def waiting_line(view) -> str:
    """A waiting job's position and estimated start, from measured step times."""
    text = f"Waiting in the queue: position {view.position}, estimated start " \
           f"{eta_text(view.start_in_s, view.at)}"
    if view.start_in_s is None:
        text += " (no run like the ones ahead of it has finished on this server yet)"
    return text + "."


def _state_of(view) -> str:
    return "gone" if view is None else ("done" if view.done else view.status)


def job_panel(job_id: str) -> None:
    """Progress, estimated start or end, live loss curve and a Stop button, refreshed at the
    pace the job changes (``job_interval``); a done job's panel does not poll."""
    svc = service()
    first = svc.runs.view(job_id)
    declared = _state_of(first)

    @st.fragment(run_every=job_interval(first))
    def _panel():
        heartbeat()
        svc, who = service(), st.session_state.get("sid", "")
        view = svc.runs.view(job_id)
        if _state_of(view) != declared:
            st.rerun()  # once: the page declares the panel again with the new pace
        if view is None:
            st.info("This run is no longer in the queue; find it on the Runs page.")
            return
        stopping = view.stopping and not view.done
        if view.status == "queued":
            st.info(waiting_line(view))
        elif not view.done:
            frac, text = progress_line(view.progress(), stopping)
            if view.end_in_s is not None and not stopping:
                text += f" · ends {eta_text(view.end_in_s, view.at)}"
            st.progress(frac, text)
        if view.losses:
            st.plotly_chart(_live_figure(view), key=f"live-{job_id}")
        c1, c2 = st.columns([1, 3])
        mine = svc.room.may_stop(who, view.owner_id)
        if not view.done and not stopping and mine:
            if c1.button("Stop", key=f"stop-{job_id}", type="primary"):
                try:
                    svc.runs.stop(job_id, who)
                    st.toast("Stopping… what was learned so far is kept.")
                    stopping = True
                except USER_ERRORS as e:
                    st.error(str(e))
        elif not mine:
            c1.caption(f"{view.owner}'s run: you can watch, not stop it")
        status = "stopping…" if stopping else view.status
        c2.markdown(f"**Status:** {status}" + (f" — {view.error}" if view.error else ""))
        if view.done and view.run_id:
            run = svc.library.run_summary(view.run_id)
            if run is not None and run.discrete:
                result_summary(run)
    _panel()


def _live_figure(view) -> go.Figure:
    """The loss figure of a job view, built once per change of the job (kept in the session):
    a refresh that finds the job unchanged does not build it again."""
    key = f"_fig-{view.id}"
    hit = st.session_state.get(key)
    if hit is None or hit[0] != view.rev:
        hit = (view.rev, loss_figure({"loss": list(view.losses)}, {"run": list(view.dev)}))
        st.session_state[key] = hit
    return hit[1]


PHASES = {"discrete": "evaluating the discrete prompt", "train": "training",
          "dev evaluation": "evaluating on the dev set", "evaluate": "evaluating the learned prompt",
          "re-test": "evaluating the nearest-word template"}


def progress_line(p: dict, stopping: bool = False) -> tuple:
    """(fraction, text) for one progress bar that serves every phase of every job kind."""
    phase = p.get("phase") or "starting"
    name = PHASES.get(phase, phase)
    if p.get("phase_total") and phase != "train":
        done, total = p["phase_done"], p["phase_total"]
        text = f"{name}: {done}/{total} examples"
        return min(1.0, done / total), ("stopping… " if stopping else "") + text
    step, steps = p.get("step", 0), p.get("steps") or 0
    if not steps or (phase == "train" and not step):
        text = "preparing: encoding the examples, building the prompt encoder…" \
            if phase == "train" else f"{name}…"
        return 0.0, ("stopping… " if stopping else "") + text
    rate = step / p["seconds"] if p.get("seconds") else 0.0
    if stopping:
        return min(1.0, step / steps), f"stopping after step {step}/{steps}…"
    eta = f" · ETA {(steps - step) / rate:.0f}s" if rate else ""
    return min(1.0, step / steps), (f"step {step}/{steps} · {rate:.2f} steps/s{eta} · "
                                    f"loss {p.get('loss', float('nan')):.4f}")


def result_summary(run) -> None:
    """A run's accuracies (``RunSummary``) with their 95% intervals, the paired verdict in
    words, accuracy by tag."""
    d, c, word = run.discrete, run.continuous, run.word
    cols = st.columns(3)
    cols[0].metric(f"discrete {word}", fmt_pct(d.accuracy), help=d.template)
    cols[0].caption(f"95% CI {d.text.split(' ', 1)[1]} · n={d.n}")
    if c:
        cols[1].metric(f"continuous {word}", fmt_pct(c.accuracy),
                       delta=f"{100 * (c.accuracy - d.accuracy):+.1f} points", help=c.template)
        cols[1].caption(f"95% CI {c.text.split(' ', 1)[1]} · n={c.n}")
        if run.seconds_per_step is not None:
            cols[2].metric("seconds / step", f"{run.seconds_per_step:.2f}")
    if run.verdict:
        st.info(run.verdict)
    if run.seed_note:
        st.caption(run.seed_note)
        st.page_link("app_pages/fewshot.py", label="Same settings over several seeds: Few-shot",
                     icon="📈")
    if run.by_tag:
        with st.expander("Accuracy by kind of example (tag)"):
            st.dataframe(pd.DataFrame([{"prompt": t.prompt, "tag": t.tag, "n": t.score.n,
                                        "accuracy": t.score.accuracy, "95% CI": t.score.text}
                                       for t in run.by_tag]), hide_index=True)


def pick_run(label: str, runs: list) -> str:
    """A run picker (``RunSummary``s) that opens the run named by the link's ``?run=<id>`` when
    there is one and keeps its choice (by id) when a run is renamed or another one appears."""
    ids = [r.id for r in runs]
    names = {r.id: f"{r.name} · {r.status} · {r.id}" for r in runs}
    key = f"pick-{label}"
    wanted = st.query_params.get("run")
    if st.session_state.get(key) not in ids:
        st.session_state[key] = wanted if wanted in ids else ids[0]
    if wanted and wanted not in ids:  # a link (or the address after a delete) to no run here
        st.session_state[f"{key}-missing"] = (wanted[:40], st.session_state[key])
    note = st.empty()  # above the picker, filled once the picker's choice is known
    # The browser's picker keeps showing an option's old label when only the label changes
    # (a rename): a new widget (keyed by the labels) for new labels, on the same run.
    import zlib
    wkey = f"{key}-{zlib.crc32(repr(sorted(names.items())).encode()):08x}"
    if st.session_state.get(wkey) not in ids:
        st.session_state[wkey] = st.session_state[key]
    st.session_state[key] = st.selectbox(label, ids, key=wkey, format_func=names.get)
    missing = st.session_state.get(f"{key}-missing")
    if missing and missing[1] == st.session_state[key]:  # until another run is picked
        note.warning(f"There is no run `{missing[0]}` here: it does not exist, was deleted or "
                     f"is not visible to you. Showing `{missing[1]}` instead; pick one below.")
    st.query_params["run"] = st.session_state[key]  # the link is state: the open run
    return st.session_state[key]


def no_run_note() -> None:
    """A page with no run to pick (none yet): a link's ``?run=<id>`` still gets its answer."""
    wanted = st.query_params.get("run")
    if wanted:
        st.warning(f"There is no run `{str(wanted)[:40]}` here: it does not exist, was deleted "
                   f"or is not visible to you.")


def my_job(state_key: str, kind: str):
    """The job this session started (its id under ``state_key``), or, in a new tab or after a
    refresh, this identity's latest job of ``kind`` (a live one first); None if there is none."""
    held = st.session_state.get(state_key)
    job = service().runs.mine(st.session_state.get("sid", ""), held, kind)  # a JobView
    if job is not None and job.status == "failed" and job.id != held:
        st.session_state[state_key] = job.id  # this session now holds it, with its reason
    return job


def heartbeat() -> None:
    """Polling fragments call this: a session whose page is open is never reaped as idle."""
    sid = st.session_state.get("sid")
    if sid:
        service().room.heartbeat(sid)


def _stop_job(job_id: str, label: str) -> None:
    """A Stop button's callback: it runs before the next run of the page or of the queue's
    fragment, so a click is never lost to the table redrawing itself."""
    svc, who = service(), st.session_state.get("sid", "")
    try:
        svc.runs.stop(job_id, who)
        st.session_state["_queue_msg"] = ("ok", f"Stopping {label}… what it learned so far is "
                                                f"kept.")
    except USER_ERRORS as e:
        st.session_state["_queue_msg"] = ("error", str(e))


def queue_polls(svc, who: str) -> bool:
    """Whether this viewer's queue list refreshes itself: while they have a job queued or
    running, and for the teacher while anything is; otherwise it shows the queue as of the last
    run of the page (with a Refresh button)."""
    snap = svc.runs.live()
    return bool(snap.live) and (snap.has_live(who) or svc.room.teacher_view(who))


def queue_frame(rows: list) -> pd.DataFrame:
    """The queue table (a plain table: readable on a projector)."""
    return pd.DataFrame([{
        "position": str(r["position"] or "–"), "run": r["run"], "kind": r["kind"],
        "owner": r["owner"] + (" (you)" if r["yours"] else ""), "state": r["state"],
        "step": "" if r["step"] is None else str(r["step"]),
        "starts": "" if r["position"] is None else eta_text(r["start_in_s"])} for r in rows]
    ).set_index("position")


def queue_panel() -> None:
    """The queue as the whole class sees it (position, owner, state, estimated start), from the
    shared snapshot: refreshed every two seconds while the viewer has something queued or
    running (the teacher: while anything is); Stop buttons for what the viewer may stop (their
    own runs; the teacher: any)."""
    svc, who = service(), st.session_state.get("sid", "")
    polls = queue_polls(svc, who)

    @st.fragment(run_every=2.0 if polls else None)
    def _queue():
        heartbeat()
        svc, who = service(), st.session_state.get("sid", "")
        if queue_polls(svc, who) != polls:
            st.rerun()  # start or stop refreshing (the page declares the list again)
        msg = st.session_state.pop("_queue_msg", None)
        if msg:
            (st.toast if msg[0] == "ok" else st.error)(msg[1])
        rows = svc.room.queue_rows(who)
        if not rows:
            st.caption("The queue is empty.")
        else:
            st.table(queue_frame(rows))
        for r in rows:
            if r["can_stop"] and r["state"] != "stopping":
                st.button(f"Stop {r['run']} ({r['owner']})", key=f"qstop-{r['job']}",
                          on_click=_stop_job, args=(r["job"], r["run"]))
        if not polls:
            import time as _t
            c1, c2 = st.columns([3, 1])
            c1.caption(f"As of {_t.strftime('%H:%M:%S')}; it refreshes itself while you have a "
                       f"run queued or running.")
            c2.button("Refresh", key="queue_refresh")  # reruns this list only
    _queue()


def runs_frame(runs: list) -> pd.DataFrame:
    """The Runs table from ``RunSummary``s."""
    return pd.DataFrame([{
        "id": r.id, "name": r.name, "status": r.status, "template": r.template or "—",
        "dataset": (r.train_ref or "").split("/")[-1] or "—",
        "discrete": r.discrete.accuracy if r.discrete else None,
        "discrete 95% CI": r.discrete.text if r.discrete else "—",  # not "None" (cancelled, imported)
        "continuous": r.continuous.accuracy if r.continuous else None,
        "continuous 95% CI": r.continuous.text if r.continuous else "—",
        "n": r.n, "p (McNemar)": r.mcnemar_p, "steps": r.steps, "shared": r.shared,
        "created": pd.to_datetime(r.created, unit="s")} for r in runs])
