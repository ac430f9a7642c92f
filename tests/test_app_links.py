"""Issue 24: Compare and Few-shot keep their settings in the URL as Train does (a shared link
opens the same settings; a value out of range is refused with Train's one line, from the ranges
of ptuning_core/config.py), and a template from a link that does not compile is shown with its
error, never run."""
from urllib.parse import parse_qs, urlsplit

from ptuning_core.api import ranges


def share_params(at, path):
    link = [c.value for c in at.code if f"/{path}?" in c.value][-1]
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def test_compare_link_in_range_fills_the_page_and_the_url_follows_it(tiny_app):
    _, page = tiny_app
    q = {"v": "MLP encoder,prompt tuning (none)", "steps": "7", "k": "8", "seed": "42",
         "n": "30"}
    at = page("app_pages/compare.py", query=q)
    assert not at.warning, [w.value for w in at.warning]
    assert next(m for m in at.multiselect if m.label == "Variants").value == \
        ["MLP encoder", "prompt tuning (none)"]
    assert at.number_input(key="w_cmp_steps").value == 7
    assert at.number_input(key="w_cmp_k").value == 8
    assert at.number_input(key="w_cmp_seed").value == 42
    assert at.number_input(key="w_cmp_max_eval").value == 30
    at.number_input(key="w_cmp_seed").set_value(99).run()  # a change reaches the URL at once
    assert str(at.query_params["seed"]) == "99" and str(at.query_params["k"]) == "8"
    share = share_params(at, "compare")
    assert share["seed"] == "99" and share["steps"] == "7" and share["n"] == "30"
    assert share["v"] == "MLP encoder,prompt tuning (none)"
    again = page("app_pages/compare.py", query=share)  # the shared link, in a new session
    assert again.number_input(key="w_cmp_seed").value == 99
    assert next(m for m in again.multiselect if m.label == "Variants").value == \
        ["MLP encoder", "prompt tuning (none)"]


def test_compare_link_out_of_range_gets_train_s_line_and_the_page(tiny_app):
    _, page = tiny_app
    q = {"k": "2000", "seed": "-1", "n": "abc", "steps": "99999", "v": "MLP encoder,nope"}
    at = page("app_pages/compare.py", query=q)
    lines = [w.value for w in at.warning]
    for word, rng in (("k=2000", ranges.range_text("k")), ("seed=-1", "seed must be between"),
                      ("n=abc", ranges.range_text("compare_max_eval")), ("steps=99999", "steps"),
                      ("v=MLP encoder,nope", "unknown variant 'nope'")):
        assert any(line.startswith(f"The link's {word} was ignored: ") and rng in line
                   for line in lines), (word, lines)
    assert len(lines) == 5  # one line each, not also Train's reading of k, seed and steps
    assert at.number_input(key="w_cmp_k").value == ranges.COMPARE_DEFAULTS["shots"]
    assert at.number_input(key="w_cmp_seed").value == 13
    assert any(b.label == "Compare" for b in at.button)
    at.run()  # the page stays usable, the lines were shown once
    assert not at.exception and not at.warning
    # Train does not repeat Compare's lines later
    at.switch_page("app_pages/train.py").run()
    assert not at.exception and not any("link's" in w.value for w in at.warning)


def test_fewshot_link_in_range_fills_the_page_and_the_url_follows_it(tiny_app):
    _, page = tiny_app
    q = {"ks": "4, 8,2", "seeds": "2", "steps": "5", "n": "20", "methods": "discrete,ptuning"}
    at = page("app_pages/fewshot.py", query=q)
    assert not at.warning, [w.value for w in at.warning]
    assert at.text_input(key="w_fs_ks").value == "4,8,2"
    assert at.number_input(key="w_fs_seeds").value == 2
    assert at.number_input(key="w_fs_steps").value == 5
    assert at.number_input(key="w_fs_max_eval").value == 20
    assert next(m for m in at.multiselect if m.label == "Methods").value == \
        ["discrete", "ptuning"]
    at.text_input(key="w_fs_ks").set_value("2,16").run()
    assert str(at.query_params["ks"]) == "2,16"
    share = share_params(at, "fewshot")
    assert share["ks"] == "2,16" and share["seeds"] == "2" and share["methods"] == \
        "discrete,ptuning"
    again = page("app_pages/fewshot.py", query=share)
    assert again.text_input(key="w_fs_ks").value == "2,16"
    assert again.number_input(key="w_fs_steps").value == 5


def test_fewshot_link_out_of_range_gets_one_line_each_and_the_page(tiny_app):
    _, page = tiny_app
    q = {"ks": "4,abc", "seeds": "9", "n": "5", "steps": "-3", "methods": "lora,magic"}
    at = page("app_pages/fewshot.py", query=q)
    lines = [w.value for w in at.warning]
    for word, rng in (("ks=4,abc", ranges.range_text("k")),
                      ("seeds=9", ranges.range_text("n_seeds")),
                      ("n=5", ranges.range_text("sweep_max_eval")), ("steps=-3", "steps"),
                      ("methods=lora,magic", "unknown method 'magic'")):
        assert any(line.startswith(f"The link's {word} was ignored: ") and rng in line
                   for line in lines), (word, lines)
    assert not any("invalid literal" in line for line in lines)
    assert at.text_input(key="w_fs_ks").value == ",".join(map(str, ranges.FEWSHOT_DEFAULTS["ks"]))
    assert at.number_input(key="w_fs_seeds").value == ranges.FEWSHOT_DEFAULTS["n_seeds"]
    assert any(b.label == "Run sweep" for b in at.button)
    many = ",".join(str(k) for k in range(1, ranges.FEWSHOT_MAX_KS + 2))
    at = page("app_pages/fewshot.py", query={"ks": many})
    assert any(f"at most {ranges.FEWSHOT_MAX_KS}" in w.value for w in at.warning)


def deep_link(model, path, query):
    """The first run of a session on ``path`` (a link opened in a new browser), not on the
    default page first as tiny_app's ``page`` does."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"),
                           default_timeout=90)
    at.session_state["model"] = model
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


BAD = "oops [P*"  # a pseudo-token tag left open


def test_a_link_template_that_does_not_compile_is_shown_with_its_error_never_run(tiny_app):
    _, page = tiny_app
    at = deep_link(page.model, "app_pages/train.py", {"t": BAD})
    assert at.title[0].value == "Train a continuous prompt"
    lines = [w.value for w in at.warning]
    assert any(f"The link's template `{BAD}` does not compile (" in w for w in lines), lines
    assert at.session_state["template"] != BAD if "template" in at.session_state else True
    shown = next(m.value for m in at.markdown if m.value.startswith("**Template:**"))
    assert BAD not in shown  # the page uses the dataset's template, not the link's
    share = [c.value for c in at.code if "/train?" in c.value][-1]
    assert "oops" not in share and "t=" in share
    at.run()  # said once
    assert not any("does not compile" in w.value for w in at.warning)
    # Compare (the other page that runs a template) says the same
    at = deep_link(page.model, "app_pages/compare.py", {"t": BAD})
    assert any(f"The link's template `{BAD}` does not compile" in w.value for w in at.warning)
    # Template Studio holds it for editing, with its error; Train then says the Studio's
    # template has an error and uses the last one that worked
    studio = page(query={"t": BAD})
    assert studio.text_input(key="template_input").value == BAD
    assert any(e.value.startswith("Template error:") for e in studio.error)
    assert studio.session_state["template"] != BAD if "template" in studio.session_state \
        else True
    studio.switch_page("app_pages/train.py").run()
    assert any("has an error" in w.value for w in studio.warning)
    assert not any(BAD in m.value for m in studio.markdown if m.value.startswith("**Template"))
    # a link's template that compiles goes to the pages
    good = "{sentence} [P*2] It was [MASK]"
    at = deep_link(page.model, "app_pages/train.py", {"t": good})
    assert at.session_state["template"] == good and not at.warning
    assert any(good in m.value for m in at.markdown if m.value.startswith("**Template:**"))


def test_a_run_link_on_a_page_with_no_run_yet_says_there_is_none(tiny_app):
    _, page = tiny_app
    for path in ("app_pages/runs.py", "app_pages/embeddings.py"):
        at = page(path, query={"run": "deadbeef0000"})
        assert any("There is no run `deadbeef0000` here" in w.value for w in at.warning), \
            [w.value for w in at.warning]
