import pytest

from ptuning_core.template import (Anchor, Field, Mask, Pseudo, TemplateError, Text,
                                   editable_words, parse, to_continuous, to_discrete,
                                   toggle_word)


def kinds(t):
    return [type(s).__name__ for s in parse(t).segments]


def test_every_row_of_the_syntax_table():
    t = parse(r"{sentence} [P] [P*4] [P:It] [A:?] was \[x\] \{y\} [MASK]")
    segs = t.segments
    assert isinstance(segs[0], Field) and segs[0].name == "sentence"
    ps = [s for s in segs if isinstance(s, Pseudo)]
    assert [(p.count, p.init) for p in ps] == [(1, None), (4, None), (1, "It")]
    assert [s.text for s in segs if isinstance(s, Anchor)] == ["?"]
    assert sum(isinstance(s, Mask) for s in segs) == 1
    text = "".join(s.text for s in segs if isinstance(s, Text))
    assert "[x]" in text and "{y}" in text
    assert t.fields == ["sentence"]


@pytest.mark.parametrize("src,pos,needle", [
    ("{sentence} It was", 17, "needs one [MASK]"),
    ("[MASK] and [MASK]", 11, "more than once"),
    ("{sentence} [X:foo] [MASK]", 11, "unknown tag"),
    ("{sentence} [P [MASK]", 11, "unclosed"),
    ("{sentence [MASK]", 0, "unclosed"),
    ("{sentence} [P*0] [MASK]", 11, "[P*0]"),
    ("{sentence} [P*x] [MASK]", 11, "whole number"),
    ("{} [MASK]", 0, "empty field"),
    ("{a-b} [MASK]", 0, "bad field name"),
    ("x ] [MASK]", 2, "without an opening"),
    ("[P:] [MASK]", 0, "needs a word"),
    ("[A: ] [MASK]", 0, "needs some text"),
    (r"a \q [MASK]", 2, "backslash"),
    ("[mask]", 0, "exactly as [MASK]"),
])
def test_errors_have_message_and_position(src, pos, needle):
    with pytest.raises(TemplateError) as e:
        parse(src)
    assert e.value.position == pos
    assert needle in e.value.message


def test_unknown_field_for_the_data():
    with pytest.raises(TemplateError) as e:
        parse("{review} It was [MASK]", fields=["sentence", "label"])
    assert e.value.position == 0 and "review" in e.value.message and "sentence" in e.value.message


def test_render_round_trip():
    for src in [r"{sentence} [P*4] It was [MASK] \[ok\]", "[P:It] [A:?] [P] {x} [MASK] .",
                "{premise} [A:?] [MASK] , {hypothesis}"]:
        assert parse(src).to_source() == src


def test_to_continuous_and_back():
    src = "{premise} [A:?] It was [MASK] , {hypothesis}"
    cont = to_continuous(src)
    assert cont == "{premise} [A:?] [P:It] [P:was] [MASK] [P:,] {hypothesis}"
    assert to_discrete(cont) == src
    assert to_discrete("{sentence} [P*4] It was [MASK]") == "{sentence} It was [MASK]"
    assert to_discrete(to_continuous("{s} a b c [MASK]")) == "{s} a b c [MASK]"


def test_causal_drops_text_after_mask_with_warning():
    t = parse("{sentence} It was [MASK] .").for_causal()
    assert isinstance(t.segments[-1], Mask)
    assert any("dropped" in w for w in t.warnings)
    assert not parse("{s} It was [MASK]").for_causal().warnings


def test_toggle_cycles_discrete_pseudo_anchor():
    src = "{s} It was [MASK]"
    assert [w for w, _ in editable_words(src)] == ["It", "was"]
    a = toggle_word(src, 0)
    assert a == "{s} [P:It] was [MASK]"
    b = toggle_word(a, 0)
    assert b == "{s} [A:It] was [MASK]"
    assert toggle_word(b, 0) == src
    assert [r for _, r in editable_words(b)] == ["anchor", "discrete"]


def test_never_evaluates_code(tmp_path, monkeypatch):
    """Python expressions in every place a template can hold text: evaluating any of them would
    create a file and set a builtin. Each must stay literal text or be refused."""
    import builtins
    target = tmp_path / "pwned"
    payloads = [f"open('{target.as_posix()}','w').close()",
                "__import__('builtins').__setattr__('PTUNING_PWNED', 1)"]

    def no_eval(*a, **k):
        raise AssertionError("the template parser called eval/exec")
    monkeypatch.setattr(builtins, "eval", no_eval)
    monkeypatch.setattr(builtins, "exec", no_eval)
    for code in payloads:
        t = parse(f"{{sentence}} [A:{code}] [MASK]")
        assert [s.text for s in t.segments if isinstance(s, Anchor)] == [code]
        t = parse(f"{{sentence}} {code} [MASK]")
        assert code in "".join(s.text for s in t.segments if isinstance(s, Text))
        assert t.to_source() == f"{{sentence}} {code} [MASK]"
        t = parse(f"[P:{code}] {{sentence}} [MASK]")
        assert [p.init for p in t.segments if isinstance(p, Pseudo)] == [code]
        with pytest.raises(TemplateError, match="bad field name"):
            parse(f"{{{code}}} [MASK]")
        with pytest.raises(TemplateError):
            parse(f"{{sentence}} [P*{code}] [MASK]")
        assert to_discrete(f"[P:{code}] {{sentence}} [MASK]") == f"{code} {{sentence}} [MASK]"
    # attribute access through a field name (what str.format would do) is refused too
    with pytest.raises(TemplateError, match="bad field name"):
        parse("{sentence.__class__} [MASK]")
    assert not target.exists()
    assert not hasattr(builtins, "PTUNING_PWNED")


def test_word_like_filter_drops_fragments_numbers_and_special_tokens():
    from ptuning_core.lm.projections import is_word
    for w in (" great", " Sports", " don't", " well-made", " It"):
        assert is_word(w), w
    for w in ("ing", "##ly", " 42", "<|im_end|>", " .", "", " a1", " x", "great"):
        assert not is_word(w), w
    assert is_word("great", spaced=False) and not is_word("##ly", spaced=False)


def test_start_from_words_and_from_random():
    from ptuning_core.template import from_words, to_random
    assert from_words("[P*4] {sentence} It was [MASK]") == "{sentence} [P:It] [P:was] [MASK]"
    assert from_words("{premise} [A:?] Answer: [MASK]") == "{premise} [A:?] [P:Answer:] [MASK]"
    assert to_random("{sentence} [P:It] [P:was] [MASK]") == "{sentence} [P] [P] [MASK]"
    assert to_random("[P*3] {x} [P:is] [MASK]") == "[P*3] {x} [P] [MASK]"
