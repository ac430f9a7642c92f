"""Bad input of every kind: one clear message, never another exception."""
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptuning_core.data import bundled as D
from ptuning_core.lm.encoding import compile_layout, encode
from ptuning_core.engine.experiment import RunSpec, prepare
from ptuning_core.template import TemplateError, parse
from ptuning_core.engine.train import ConfigError, TrainConfig
from ptuning_core.lm.verbalizer import Verbalizer, VerbalizerError
from tiny import tiny_causal, tiny_masked

ROOT = Path(__file__).resolve().parents[2]
ALPHABET = st.sampled_from(list("[]{}\\PAMSK*:0123456789 abcx\t\n_-é") +
                           ["[MASK]", "[P]", "[P*", "[P:", "[A:", "{sentence}", "{"])


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map("".join))
def test_any_string_parses_or_raises_template_error_with_position(s):
    try:
        t = parse(s)
    except TemplateError as e:
        assert 0 <= e.position <= len(s) and e.message
    else:
        assert sum(seg.role == "mask" for seg in t.segments) == 1
        assert parse(t.to_source()).segments == tuple(
            type(x)(**{**x.__dict__, "start": y.start, "end": y.end})
            for x, y in zip(t.segments, parse(t.to_source()).segments))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_any_unicode_string_never_crashes(s):
    try:
        parse(s)
    except TemplateError as e:
        assert 0 <= e.position <= max(len(s), 4000)


_CAUSAL, _MASKED = tiny_causal(), tiny_masked()


@settings(max_examples=120, deadline=None)
@given(st.lists(ALPHABET, max_size=20).map("".join), st.text(max_size=60))
def test_parsed_templates_encode_on_both_kinds_or_fail_cleanly(tpl, text):
    for bb in (_CAUSAL, _MASKED):
        try:
            lay = compile_layout(tpl, bb.tokenizer, bb.kind)
            enc = encode(lay, {"sentence": text}, bb.tokenizer, bb.max_length)
        except TemplateError:
            continue
        assert len(enc.ids) == len(enc.roles) == len(enc.pseudo_idx) <= bb.max_length
        assert 0 <= enc.label_pos < len(enc.ids) or (bb.kind == "causal" and enc.label_pos == -1
                                                     and not enc.ids)


def test_very_long_template_refused():
    with pytest.raises(TemplateError, match="longer than"):
        parse("x " * 3000 + "[MASK]")
    bb = tiny_causal()
    lay = compile_layout("the " * 200 + "{sentence} [MASK]", bb.tokenizer, "causal")
    with pytest.raises(TemplateError, match="context"):
        encode(lay, {"sentence": "a"}, bb.tokenizer, bb.max_length)


FILES = {
    "not_utf8.csv": (b"sentence,label\n\xe9t\xe9,positive\n", "not UTF-8"),
    "binary.csv": (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    "empty.csv": (b"", "is empty"),
    "header_only.csv": (b"sentence,label\n", "no data rows"),
    "missing_col.csv": (b"text,label\na,positive\n", "no column 'sentence'"),
    "ragged.csv": (b"sentence,label\na,positive,extra\n", "has 3 fields"),
    "bad_label.csv": (b"sentence,label\na,positive\nb,meh\n", "not one of the verbalizer's"),
    "one_class.csv": (b"sentence,label\na,positive\nb,positive\n", "only the class"),
    "empty_text.csv": (b"sentence,label\n ,positive\nb,negative\n", "is empty"),
    "bad.jsonl": (b'{"sentence": "a", "label": "positive"}\n{oops\n', "line 2 is not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_bad_files_through_the_shared_loader(tmp_path, name):
    raw, needle = FILES[name]
    f = tmp_path / name
    f.write_bytes(raw)
    spec = RunSpec(template="{sentence} [P] It was [MASK]", train=str(f), eval=str(f),
                   verbalizer={"negative": ["terrible"], "positive": ["great"]})
    with pytest.raises(D.DataError, match=re.escape(needle)):
        prepare(spec)
    # the app's upload path refuses it too (there the classes come from the file itself)
    if name != "bad_label.csv":
        from ptuning_core.data import uploads
        with pytest.raises(D.DataError):
            uploads.save("0123456789abcdef", raw, name, ["sentence"], "label")


def test_gigantic_file_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "MAX_BYTES", 1000)
    f = tmp_path / "big.csv"
    f.write_bytes(b"sentence,label\n" + b"hello world,positive\n" * 200)
    with pytest.raises(D.DataError, match="limit"):
        D.load_file(f)


def test_duplicates_and_formula_payloads(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text('sentence,label\n"=HYPERLINK(""http://x"")",positive\nok,negative\nok,negative\n')
    spec = RunSpec(template="{sentence} [P] It was [MASK]", train=str(f), eval=str(f),
                   verbalizer={"negative": ["terrible"], "positive": ["great"]})
    prep = prepare(spec)
    assert len(prep.train_rows) == 2 and any("duplicate" in w for w in prep.warnings)
    assert prep.train_rows[0]["sentence"].startswith("=HYPERLINK")  # plain text, untouched
    assert D.safe_cell(prep.train_rows[0]["sentence"]).startswith("'")


def test_label_words_refused_with_reason():
    bb = tiny_masked()
    lay = compile_layout("{sentence} [MASK]", bb.tokenizer, "masked")
    with pytest.raises(VerbalizerError, match="cannot be encoded"):
        Verbalizer.parse({"a": ["qqqzzz"], "b": ["great"]}).compile(lay, bb.tokenizer)
    with pytest.raises(VerbalizerError, match="same token"):
        Verbalizer.parse({"a": ["great"], "b": ["great"]}).compile(lay, bb.tokenizer)
    with pytest.raises(VerbalizerError, match="empty label word"):
        Verbalizer.parse({"a": [" "], "b": ["great"]})


@pytest.mark.parametrize("kw", [dict(steps=0), dict(steps=10**9), dict(lr=0), dict(lr=5.0),
                                dict(batch_size=0), dict(aux_weight=-1),
                                dict(lr=float("inf")), dict(steps=True)])
def test_numbers_out_of_range(kw):
    with pytest.raises(ConfigError):
        TrainConfig(**kw).validate()
    with pytest.raises(D.DataError):
        D.sample_k_shot([{"label": "a"}], 0, 1)


def test_no_code_execution_or_pickle_anywhere():
    src = "\n".join(p.read_text() for p in (ROOT / "ptuning_core").rglob("*.py"))
    src += "\n".join(p.read_text() for p in list((ROOT / "app_pages").glob("*.py")) +
                     list((ROOT / "ui").glob("*.py")) + [ROOT / "app.py"])
    assert not re.search(r"(?<![.\w])(eval|exec)\(|import pickle|pickle\.|trust_remote_code=True", src)
    for m in re.finditer(r"torch\.load\(([^)]*)\)", src):
        assert "weights_only=True" in m.group(1)
    assert "trust_remote_code=False" in (ROOT / "ptuning_core" / "lm" / "backbone.py").read_text()
