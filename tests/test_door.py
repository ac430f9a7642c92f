"""The Service is the only door: pages and ui/ import nothing from the engine, and the typed
views the pages draw come from the service (tiny models, no browser)."""
import ast
import re
import time
from pathlib import Path

import pytest

from ptuning_core.api import RetestResult, RunSpec, StudioView, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
ENGINE = {"model", "train", "evaluate", "experiment", "fewshot", "compare", "backbone", "registry",
          "store", "jobs", "encoding", "template", "verbalizer", "projections", "portable",
          "learned", "data", "views", "hfdata", "uploads", "classroom", "identity", "access"}
# what pages and ui/ may import from the core: the door (service + its vocabulary) and the
# pure formatting helpers of stats
ALLOWED = {"ptuning_core.app", "ptuning_core.service", "ptuning_core.api", "ptuning_core.stats",
           "ptuning_core.config"}


def core_imports(path: Path) -> list:
    """Every ptuning_core module a file imports (at any depth, also inside functions)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "ptuning_core":  # from ptuning_core import data
                out += [(node.lineno, f"ptuning_core.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return [(n, m) for n, m in out if m == "ptuning_core" or m.startswith("ptuning_core.")]


def door_files() -> list:
    files = sorted((ROOT / "app_pages").glob("*.py")) + sorted((ROOT / "ui").glob("*.py")) + \
        [ROOT / "app.py"]
    assert len(files) > 5
    return files


def test_pages_and_ui_import_only_the_door():
    bad = []
    for f in door_files():
        for line, mod in core_imports(f):
            if mod not in ALLOWED or mod.split(".")[1] in ENGINE:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "pages/ui must go through ptuning_core.service:\n" + "\n".join(bad)


BEHIND_THE_DOOR = re.compile(r"\b(svc|service\(\))\.(queue|settings|classroom|ray|store|_\w+)\b")


def test_pages_reach_nothing_behind_the_door():
    """Pages and ui/ call the façades only: never the queue, settings, class, pool or store,
    nor anything private of the door."""
    bad = [f"{f.relative_to(ROOT)}:{i}: {line.strip()}" for f in door_files()
           for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
           if BEHIND_THE_DOOR.search(line)]
    assert not bad, "\n".join(bad)
    assert BEHIND_THE_DOOR.search("job = svc.queue.get(jid)")  # the check does see one
    assert BEHIND_THE_DOOR.search("service()._core.store")
    assert not BEHIND_THE_DOOR.search("svc.runs.view(jid)")


def test_each_facade_reads_in_one_sitting():
    """No class of the door (ptuning_core/app/) is over ~200 lines."""
    sizes = {}
    for f in sorted((ROOT / "ptuning_core" / "app").glob("*.py")):
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                sizes[f"{f.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert {"runs.py:Runs", "library.py:Library", "inspection.py:Inspect", "datasets.py:Data",
            "classroom.py:ClassroomDoor", "__init__.py:Service"} <= set(sizes)
    assert max(sizes.values()) <= 210, sizes
    assert sizes["__init__.py:Service"] <= 60  # a composition, not a fifth room


def test_the_door_check_sees_every_form_of_import(tmp_path):
    p = tmp_path / "page.py"
    p.write_text("import ptuning_core.lm.model\nfrom ptuning_core import data as D\n"
                 "def f():\n    from ptuning_core.template import parse\n"
                 "from ptuning_core.service import Service\n")
    assert sorted(m for _, m in core_imports(p)) == [
        "ptuning_core.data", "ptuning_core.lm.model", "ptuning_core.service",
        "ptuning_core.template"]


def _private_names_defined(tree) -> set:
    """The private names a module defines: functions, classes, methods, ``self._x``."""
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and \
                isinstance(n.value, ast.Name) and n.value.id == "self":
            out.add(n.attr)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
    return {x for x in out if x.startswith("_") and not x.startswith("__")}


def private_crossings(files: list) -> list:
    """Where a module of the core uses another module's private name: ``from .x import _y``,
    or ``obj._y`` where ``_y`` is defined in another module of the core and not in this one
    (``pm._embed`` in fewshot.py reaching into model.PromptModel)."""
    trees = {f: ast.parse(f.read_text(encoding="utf-8"), str(f)) for f in files}
    defined = {f: _private_names_defined(t) for f, t in trees.items()}
    bad = []
    for f, tree in trees.items():
        elsewhere = set().union(*(d for g, d in defined.items() if g != f)) - defined[f]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                bad += [f"{f.name}:{node.lineno} imports {a.name} from {node.module}"
                        for a in node.names if a.name.startswith("_") and
                        a.name != "__version__"]
            elif isinstance(node, ast.Attribute) and node.attr in elsewhere and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                bad.append(f"{f.name}:{node.lineno} uses .{node.attr} of another module")
    return bad


def test_no_private_names_cross_modules_in_the_core():
    """The core's modules use each other's public names only."""
    bad = private_crossings(sorted((ROOT / "ptuning_core").rglob("*.py")))
    assert not bad, "\n".join(bad)


def test_the_private_name_check_sees_an_import_and_an_attribute(tmp_path):
    (tmp_path / "a.py").write_text("class M:\n    def _embed(self):\n        return 1\n"
                                   "    def run(self):\n        return self._embed()\n")
    (tmp_path / "b.py").write_text("from .a import _helper\ndef f(pm):\n"
                                   "    return pm._embed()\n")
    assert private_crossings([tmp_path / "a.py", tmp_path / "b.py"]) == [
        "b.py:1 imports _helper from a", "b.py:3 uses ._embed of another module"]


def test_the_model_delegates_batching_the_prefix_cache_and_the_targets(monkeypatch):
    """Batching, the prefix cache and the label->target mapping are their own modules: the
    PromptModel calls them (a spy on each sees the call) and defines no copy of them."""
    import ptuning_core.lm.model as M
    from ptuning_core.lm import batching
    from ptuning_core.lm import kvcache
    from ptuning_core.lm import targets
    from ptuning_core.lm.verbalizer import Verbalizer
    from tiny import tiny_causal
    assert [n for n, o in vars(M).items() if isinstance(o, type) and
            o.__module__ == M.__name__] == ["PromptModel"]
    calls = []

    def spy(name, fn):
        def wrapped(*a, **k):
            calls.append(name)
            return fn(*a, **k)
        monkeypatch.setattr(M, name, wrapped)
    for name, fn in (("collate", batching.collate), ("gold_ids", targets.gold_ids),
                     ("build_prefix_cache", kvcache.build_prefix_cache)):
        spy(name, fn)
    pm = M.PromptModel(tiny_causal(), "{sentence} [P*2] It was [MASK]",
                       Verbalizer.parse(VERB), "lstm")
    encs = pm.encode([ROW, {"sentence": "a dull long film", "label": "negative"}])
    b = pm.collate(encs)
    assert isinstance(b, batching.Batch) and b.input_ids.shape[0] == 2
    cache = pm.build_prefix_cache(encs, shared=False)  # shared=True: kvcache.SHARED's
    assert isinstance(cache, kvcache.PrefixCache) and cache.mask.shape[0] == 2
    assert pm.gold_ids(["positive", "negative"]) == [1, 0]  # class indices, sorted
    assert calls == ["collate", "build_prefix_cache", "gold_ids"], calls


# ---- the service's typed views on a tiny model ------------------------------------------------
@pytest.fixture
def svc(tiny_app):
    return tiny_app[0]


VERB = {"negative": ["terrible"], "positive": ["great"]}
ROW = {"sentence": "the movie was fun", "label": "positive"}


def test_studio_reports_a_bad_template_as_one_line_with_its_position(svc):
    view = svc.inspect.studio(svc._core.settings.allowed_models[0], "{sentence} It was [MASK", ["sentence"],
                      VERB, ROW)
    assert isinstance(view, StudioView) and not view.ok
    assert view.error and "\n" not in view.error_line
    assert view.error_line.startswith("Template error: ")
    assert view.error_position == len("{sentence} It was ")  # where the open tag starts
    assert view.tokens == () and view.words == ()
    # an unknown field is reported at the field
    view = svc.inspect.studio(svc._core.settings.allowed_models[0], "It was {text} [MASK]", ["sentence"], VERB,
                      ROW)
    assert not view.ok and view.error_position == len("It was ")


def test_studio_view_of_a_good_template(svc):
    model = svc._core.settings.allowed_models[0]
    src = "{sentence} [P:It] was [MASK]"
    view = svc.inspect.studio(model, src, ["sentence"], VERB, ROW)
    assert view.ok and view.n_pseudo == 1 and not view.truncated
    roles = [t.role for t in view.tokens]
    assert "field" in roles and roles.count("pseudo") == 1 and roles[-1] == "mask"
    assert view.n_tokens == len(view.tokens)
    assert [(w.word, w.role) for w in view.words] == [("It", "pseudo"), ("was", "discrete")]
    assert view.words[0].source == "{sentence} [A:It] was [MASK]"  # pseudo -> anchor
    assert view.words[1].source == "{sentence} [P:It] [P:was] [MASK]"
    assert view.discrete_source == "{sentence} It was [MASK]"
    assert view.continuous_source == "{sentence} [P:It] [P:was] [MASK]"
    assert view.words_source == "{sentence} [P:It] [P:was] [MASK]"  # start from my words
    assert view.random_source == "{sentence} [P] [P] [MASK]"  # same positions, random start
    assert view.verbalizer == VERB and not view.verbalizer_error
    assert [(t.cls, t.word) for t in view.label_tokens] == [("negative", "terrible"),
                                                            ("positive", "great")]
    assert svc.inspect.studio(model, src, ["sentence"], VERB, ROW) is view  # cached
    # label words this model cannot encode: one line, the template still fine
    bad = svc.inspect.studio(model, src, ["sentence"], {"negative": ["zzqx"], "positive": ["great"]},
                     ROW)
    assert bad.ok and bad.verbalizer is None and "zzqx" in bad.verbalizer_error
    # bounded cache
    svc.inspect.STUDIO_CACHE = 2
    for i in range(4):
        svc.inspect.studio(model, src + " ." * i, ["sentence"], VERB, ROW)
    assert len(svc.inspect._studio) == 2


def test_preview_rows_are_typed(svc):
    rows = [ROW, {"sentence": "a boring plot", "label": "negative"}]
    out = svc.inspect.preview(svc._core.settings.allowed_models[0], "{sentence} It was [MASK]", VERB,
                      ["sentence"], "label", rows)
    assert [r.gold for r in out] == ["positive", "negative"]
    assert all(r.prediction in VERB and set(r.probs) == set(VERB) for r in out)
    assert set(out[0].as_row()) == {"example", "gold", "prediction", "negative", "positive"}


def finished_run(svc, steps=4):
    job = svc.runs.train("alice", RunSpec(
        template="{sentence} [P:it] [P*2] was [MASK]", train="sentiment:train",
        eval="sentiment:test", verbalizer=VERB, model=svc._core.settings.allowed_models[0], shots=4,
        max_eval=16, train_cfg=TrainConfig(steps=steps, batch_size=4, snapshot_every=2)))
    job = svc._core.queue.wait(job.id, 120)
    assert job.status == "finished", job.error
    return job.run_id


def test_embeddings_map_and_a_queued_retest(svc):
    rid = finished_run(svc)
    view = svc.inspect.embeddings(rid, 3, False)
    assert view.n_pseudo == 3 and [p.name for p in view.pseudo] == ["P0", "P1", "P2"]
    assert view.pseudo[0].init_word.strip() == "it" and view.pseudo[1].init_word == "(random)"
    assert all(len(p.nearest) == 3 for p in view.pseudo)
    assert len(view.similarity) == 3 and abs(view.similarity[0][0] - 1) < 1e-4
    assert view.steps and len(view.losses) == 4 and view.can_retest
    assert "[P" not in view.discretized and "[MASK]" in view.discretized
    assert svc.inspect.embeddings(rid, 3, False) is view
    emap = svc.inspect.embedding_map(rid, "pca")
    assert len(emap.path) == len(view.steps) and all(len(s) == 3 for s in emap.path)
    assert len(emap.vocab) == len(emap.vocab_labels) > 0
    assert svc.inspect.embedding_map(rid, "pca") is emap

    job = svc.inspect.retest("bob", rid)  # anyone may re-test a run; the job is bob's
    assert job.kind == "retest" and job.owner_id == "bob"
    assert svc._core.queue.get(job.id) is not None  # it went through the queue, not the caller's thread
    job = svc._core.queue.wait(job.id, 120)
    assert job.status == "finished", job.error
    res = svc.inspect.retest_result(job.id)
    assert isinstance(res, RetestResult) and svc.inspect.last_retest(rid) == res
    assert res.template == view.discretized and res.n == 16
    assert res.ci95[0] <= res.accuracy <= res.ci95[1]
    run = svc._core.store.get(rid)
    cont = run["result"]["continuous"]
    assert res.continuous_accuracy == cont["accuracy"] and res.continuous_n == cont["n"]
    # the verdict follows the numbers: the disagreements it cites are the real ones
    cpreds = {p["index"]: p["correct"] for p in run["result"]["details"]["continuous"]
              ["predictions"]}
    assert res.only_continuous_right + res.only_discretized_right <= res.n
    assert f"right on {res.only_discretized_right} examples" in res.verdict
    assert f"the reverse on {res.only_continuous_right}" in res.verdict
    assert ("No significant difference" in res.verdict) == (res.mcnemar_p >= 0.05)
    n_cont_right = sum(cpreds.values())
    assert round(res.continuous_accuracy * res.n) == n_cont_right
    # correct counts agree with the paired counts: acc_d - acc_c = (only_d - only_c) / n
    assert abs((res.accuracy - res.continuous_accuracy) * res.n
               - (res.only_discretized_right - res.only_continuous_right)) < 1e-6


def test_a_retest_is_stored_and_survives_a_restart(svc, monkeypatch):
    """A re-test's result is a stored record (kind retest, owned by who asked): a new Service
    on the same store gives it back without computing it again."""
    from ptuning_core.app import views
    from ptuning_core.service import Service
    from ptuning_core.store.runs import RunStore
    rid = finished_run(svc, steps=2)
    view = svc.inspect.retest("bob", rid)
    job = svc._core.queue.wait(view.id, 120)
    assert job.status == "finished", job.error
    res = svc.inspect.retest_result(view.id)
    rec = svc._core.store.get(job.run_id, details=False)
    assert rec["kind"] == "retest" and rec["owner"] == "bob" and rec["config"]["run"] == rid
    assert [r.id for r in svc.library.runs("train")] == [rid]  # not listed among the runs

    def fail(*a, **k):
        raise AssertionError("the re-test was computed again")
    monkeypatch.setattr(views, "retest", fail)
    again = Service(svc._core.settings, RunStore(svc._core.store.root))
    try:
        assert again.inspect.last_retest(rid) == res and res.template
        assert again.inspect.retest_job(rid) is None  # the job itself was the old server's
    finally:
        again.close()


def test_one_train_click_parses_its_template_once_and_loads_no_model(svc, monkeypatch):
    """A Train click (``runs.train``) parses its template once and loads no model in the
    request: a model not loaded yet is loaded by the job (here: it fails there, one line)."""
    import sys

    from ptuning_core.lm import registry

    from ptuning_core import template
    from ptuning_core.api import ModelLoadError
    real, parsed, loads = template.parse, [], []

    def counting(src, *a, **k):
        parsed.append(src)
        return real(src, *a, **k)
    for mod in list(sys.modules.values()):  # every core module that holds the parser
        if (getattr(mod, "__name__", "") or "").startswith("ptuning_core") and \
                getattr(mod, "parse", None) is real:
            monkeypatch.setattr(mod, "parse", counting)

    def load(name, device):
        loads.append(name)
        raise ModelLoadError(f"cannot load {name}")
    monkeypatch.setattr(registry, "load_backbone", load)
    name = "someone/not-loaded-yet"
    monkeypatch.setattr(svc._core.settings, "allowed_models",
                        svc._core.settings.allowed_models + [name])
    tpl = "{sentence} [P*2] It was [MASK]"
    view = svc.runs.train("alice", RunSpec(
        template=tpl, train="sentiment:train", eval="sentiment:test", verbalizer=VERB,
        model=name, shots=4, max_eval=8, train_cfg=TrainConfig(steps=2, batch_size=4)))
    assert parsed.count(tpl) == 1 and loads == []  # the request: one parse, no model
    from ptuning_core.api import JobView
    assert isinstance(view, JobView) and view.status in ("queued", "running") and view.run_id
    job = svc._core.queue.wait(view.id, 60)
    assert loads == [name]  # the job loaded it
    assert job.status == "failed" and "cannot load someone/not-loaded-yet" in job.error
    assert svc._core.store.get(view.run_id, details=False)["status"] == "failed"
    # a model already loaded is checked in the request: label words it cannot encode
    bad = RunSpec(template=tpl, train="sentiment:train", eval="sentiment:test",
                  verbalizer={"negative": ["zzqxv"], "positive": ["great"]},
                  model=svc._core.settings.allowed_models[0], shots=4, max_eval=8,
                  train_cfg=TrainConfig(steps=2, batch_size=4))
    from ptuning_core.api import USER_ERRORS
    n = len(svc._core.store.list())
    with pytest.raises(USER_ERRORS):
        svc.runs.train("alice", bad)
    assert len(svc._core.store.list()) == n  # refused before anything was stored


def test_retest_of_a_missing_run_is_one_line(svc):
    from ptuning_core.api import USER_ERRORS
    with pytest.raises(USER_ERRORS, match="no run"):
        svc.inspect.retest("bob", "20990101-000000-abcdef")


def test_comparison_and_sweep_come_back_typed(svc):
    from ptuning_core.api import SweepSpec
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer=VERB, model=svc._core.settings.allowed_models[0],
                   shots=4, max_eval=12, name="compare",
                   train_cfg=TrainConfig(steps=2, batch_size=4))
    job = svc.runs.compare("alice", spec, ["P-tuning (lstm)", "prompt tuning (none)"])
    job = svc._core.queue.wait(job.id, 120)
    assert job.status == "finished", job.error
    cid = svc._core.store.list(kind="compare")[0]["id"]
    view = svc.library.comparison(cid)
    assert [r.prompt for r in view.rows] == ["discrete", "P-tuning (lstm)",
                                             "prompt tuning (none)"]
    assert view.rows[0].delta == 0 and all(r.n == 12 for r in view.rows)
    assert len(view.pairs) == 1 and view.pairs[0].a == "P-tuning (lstm)"
    assert set(view.losses) == set(view.changed) == {"P-tuning (lstm)", "prompt tuning (none)"}
    assert [c.title for c in view.confusions] == ["discrete", "P-tuning (lstm)",
                                                  "prompt tuning (none)"]
    assert view.owner == "alice" and view.missing == 0
    # deleting a variant's run leaves the others
    first = svc._core.store.get(cid)["result"]["variants"][0]["run_id"]
    svc._core.store.delete(first, force=True)
    assert svc.library.comparison(cid).missing == 1 and len(svc.library.comparison(cid).rows) == 2

    sweep = SweepSpec(dataset="sentiment", model=svc._core.settings.allowed_models[0], ks=[2],
                      seeds=[13], methods=["discrete", "prompt-tuning"], steps=1, max_eval=8)
    job = svc.runs.sweep("alice", sweep)
    job = svc._core.queue.wait(job.id, 120)
    assert job.status == "finished", job.error
    sid = svc._core.store.list(kind="sweep")[0]["id"]
    sv = svc.library.sweep(sid)
    assert {c.method for c in sv.cells} == {"discrete", "prompt-tuning"} and sv.ks == [2]
    assert [(p.method, p.k, p.n) for p in sv.summary] == [("discrete", 2, 1),
                                                          ("prompt-tuning", 2, 1)]
    assert sv.summary[0].mean == next(c.accuracy for c in sv.cells if c.method == "discrete")


def test_retest_runs_in_the_queue_from_the_page(tiny_app):
    """The Embeddings page's button queues a job and shows its result with the paired test."""
    svc, page = tiny_app
    rid = finished_run(svc)
    at = page("app_pages/embeddings.py")
    next(b for b in at.button if b.label == "Evaluate the discretized template").click().run()
    assert not at.exception
    jid = at.session_state[f"retest-{rid}"]
    job = svc._core.queue.get(jid)
    assert job is not None and job.kind == "retest"
    svc._core.queue.wait(jid, 120)
    end = time.time() + 30
    while time.time() < end and svc.inspect.retest_result(jid) is None:
        time.sleep(0.1)
    at.run()
    labels = [m.label for m in at.metric]
    assert "nearest-word prompt" in labels and "continuous prompt" in labels
    assert any("McNemar" in i.value for i in at.info)


def test_runs_come_back_as_typed_summaries(svc):
    rid = finished_run(svc, steps=2)
    [run] = svc.library.runs("train")
    stored = svc._core.store.get(rid)["result"]
    assert run.id == rid and run.owner == "alice" and run.status == "finished"
    assert run.has_prompt and run.steps == 2 and run.word == "accuracy"
    assert run.continuous.accuracy == stored["continuous"]["accuracy"] and run.n == 16
    assert run.continuous.ci95[0] <= run.continuous.accuracy <= run.continuous.ci95[1]
    assert run.mcnemar_p == stored["paired"]["mcnemar_p"] and "McNemar" in run.verdict
    detail = svc.library.run_detail(rid)
    assert detail.summary == run and [s for s, _ in detail.losses] == [1, 2]
    assert [c.title for c in detail.confusions] == ["discrete", "continuous"]
    assert svc.library.run_summary("0123456789ab") is None and svc.library.run_detail("0123456789ab") is None
    svc.library.share(rid, True, "alice")
    assert [r.id for r in svc.library.runs(None, shared_only=True)] == [rid]


def test_studio_page_draws_the_typed_view(tiny_app):
    svc, page = tiny_app
    at = page(None)  # Template Studio, sentiment
    at.text_input(key="template_input").set_value("{sentence} It was [MASK").run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Template error:") and "\n" not in errors[0]
    assert any("<mark" in m.value for m in at.markdown)
    assert not any("Preview" in s.value for s in at.subheader)  # nothing stale below the error
    at.text_input(key="template_input").set_value("{sentence} It was [MASK]").run()
    assert not at.error and any("Preview" in s.value for s in at.subheader)
    assert at.session_state["template"] == "{sentence} It was [MASK]"
    # an open-vocabulary dataset: no verbalizer editor, the preview still comes
    at = page(None, dataset="facts-capital")
    assert not at.error and not at.exception
    assert any("Open-vocabulary" in i.value for i in at.info)
    assert not any("Verbalizer" == s.value for s in at.subheader)
