import collections

import pytest

from ptuning_core.data import bundled as D
from ptuning_core.template import parse


@pytest.mark.parametrize("name", D.list_datasets())
def test_every_bundled_file(name):
    info = D.dataset_info(name)
    lf, fields = info["label_field"], info["fields"]
    texts = {}
    for split, path in info["files"].items():
        ds = D.validate(D.load_file(D.DATA_DIR / path), fields, lf, info["classes"])
        assert len(ds.rows) == len(D.load_file(D.DATA_DIR / path).rows), "duplicate rows"
        for r in ds.rows:
            assert all(r[f].strip() for f in fields) and r[lf].strip()
            key = tuple(r[f] for f in fields)
            assert key not in texts or texts[key] == split, f"{key} in {texts.get(key)} and {split}"
            texts[key] = split
        if info["label_space"] == "classes":
            counts = collections.Counter(r[lf] for r in ds.rows)
            assert set(counts) == set(info["classes"])
            assert max(counts.values()) <= 0.55 * sum(counts.values()), counts
        else:
            assert all(len(r[lf].split()) == 1 for r in ds.rows)
    for kind in ("causal", "masked"):
        parse(info["templates"][kind], fields=fields)
        assert parse(info["ptuning_templates"][kind], fields=fields).has_pseudo
    assert info["description"]


def test_sizes_required_by_the_spec():
    def n(name):
        return sum(len(D.load_ref(f"{name}:{s}")) for s in D.dataset_info(name)["files"])
    assert n("sentiment") >= 600 and n("topics") >= 480 and n("pairs") >= 450
    facts = [d for d in D.list_datasets() if d.startswith("facts-")]
    assert len(facts) >= 6 and all(n(f) >= 60 for f in facts)
    assert "[A:" in D.dataset_info("pairs")["templates"]["masked"]


CLASSIFICATION = [n for n in D.list_datasets() if D.dataset_info(n)["label_space"] == "classes"]


def _texts(name, split):
    info = D.dataset_info(name)
    return [" ".join(r[f] for f in info["fields"]) for r in D.load_ref(f"{name}:{split}").rows]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_splits_measure_something(name):
    """No test or dev split shares 5-word sequences with train for more than 10% of its
    examples, none has a near duplicate in train, none is imbalanced beyond 55/45."""
    from ptuning_core.data.leakage import imbalance, near_duplicates, ngram_overlap
    train = _texts(name, "train")
    for split in ("dev", "test"):
        other = _texts(name, split)
        ov = ngram_overlap(train, other)
        assert ov.fraction <= 0.10, (split, ov.sharing, ov.n, ov.examples)
        assert not near_duplicates(train, other), near_duplicates(train, other)[:3]
    lf = D.dataset_info(name)["label_field"]
    for split in ("train", "dev", "test"):
        assert imbalance([r[lf] for r in D.load_ref(f"{name}:{split}").rows]) <= 0.55, split


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_examples_vary_in_length_and_carry_difficulty_tags(name):
    from ptuning_core.data.leakage import words
    info = D.dataset_info(name)
    rows = [r for s in info["files"] for r in D.load_ref(f"{name}:{s}").rows]
    lengths = [len(words(" ".join(r[f] for f in info["fields"]))) for r in rows]
    assert sum(20 <= n <= 60 for n in lengths) >= 0.2 * len(rows)
    tags = collections.Counter(r["tag"] for r in rows)
    assert info["tag_field"] == "tag" and len(tags) >= 3
    assert tags.most_common(1)[0][1] < 0.7 * len(rows)  # hard cases are not a token few


def test_leakage_checks_catch_fragment_assembled_data():
    """The checker fails data built like the old sets: subjects x predicates."""
    from ptuning_core.data.leakage import ngram_overlap, near_duplicates
    subj = ["The film", "This movie", "The sequel", "The remake"]
    pred = ["was a chore to sit through from start to end", "kept me smiling from the first scene"]
    rows = [f"{s} {p}." for s in subj for p in pred]
    train, test = rows[:4], rows[4:]  # two subjects each, the same predicates
    assert ngram_overlap(train, test).fraction > 0.5
    assert near_duplicates(train, test)


def test_k_shot_is_deterministic_disjoint_and_balanced():
    rows = D.load_ref("sentiment:train").rows
    a_tr, a_dv = D.sample_k_shot(rows, 8, 13)
    b_tr, b_dv = D.sample_k_shot(rows, 8, 13)
    assert a_tr == b_tr and a_dv == b_dv
    c_tr, _ = D.sample_k_shot(rows, 8, 21)
    assert c_tr != a_tr
    assert collections.Counter(r["label"] for r in a_tr) == {"negative": 8, "positive": 8}
    assert not {r["sentence"] for r in a_tr} & {r["sentence"] for r in a_dv}
    facts = D.load_ref("facts-capital:train").rows
    tr, dv = D.sample_k_shot(facts, 5, 13, "object", vocab=True)
    assert len(tr) == 5 and len(dv) == 5
    with pytest.raises(D.DataError, match="needs"):
        D.sample_k_shot(rows, 1000, 13)


def test_user_files_csv_tsv_jsonl_and_mapping(tmp_path):
    (tmp_path / "a.tsv").write_text("text\ty\nnice one\t1\nawful\t0\n")
    ds = D.validate(D.load_file(tmp_path / "a.tsv"), ["sentence"], "label", ["0", "1"],
                    mapping={"sentence": "text", "label": "y"})
    assert ds.rows[0]["sentence"] == "nice one" and ds.rows[0]["label"] == "1"
    (tmp_path / "b.jsonl").write_text('{"sentence": "ok", "label": 1}\n{"sentence": "no", "label": 0.0}\n')
    ds = D.validate(D.load_file(tmp_path / "b.jsonl"), ["sentence"], "label", ["0", "1"])
    assert [r["label"] for r in ds.rows] == ["1", "0"]  # normalised to strings


@pytest.mark.parametrize("raw,name,needle", [
    (b"\x00\x01\x02binary", "x.csv", "binary"),
    (b"sentence,label\n", "x.csv", "no data rows"),
    (b'{"a": 1}\nnot json\n', "x.jsonl", "line 2 is not valid JSON"),
    (b"[1,2]\n", "x.jsonl", "not a JSON object"),
    (b"a,a\n1,2\n", "x.csv", "duplicate column"),
    (b"a\n1\n", "x.xlsx", "unknown file type"),
])
def test_bad_user_files(raw, name, needle):
    with pytest.raises(D.DataError, match=needle):
        D.parse_bytes(raw, name)


def test_size_limit(monkeypatch):
    monkeypatch.setattr(D, "MAX_BYTES", 100)
    with pytest.raises(D.DataError, match="the limit is"):
        D.parse_bytes(b"sentence,label\n" + b"x,1\n" * 50, "big.csv")


def test_duplicates_dropped_with_warning_and_formula_cells_defused(tmp_path):
    ds = D.parse_bytes(b"sentence,label\n=cmd|' /C calc'!A0,1\nsame,0\nsame,0\n", "f.csv")
    v = D.validate(ds, ["sentence"], "label", ["0", "1"])
    assert len(v.rows) == 2 and any("duplicate" in w for w in v.warnings)
    assert v.rows[0]["sentence"].startswith("=cmd")  # kept as plain text, never evaluated
    assert D.safe_cell(v.rows[0]["sentence"]).startswith("'=")


def test_glue_style_tsv_with_lone_quotes():
    raw = b'sentence\tlabel\nit \'s a "charming and often affecting journey . \t1\nunflinchingly bleak\t0\n'
    ds = D.parse_bytes(raw, "dev.tsv")
    assert len(ds.rows) == 2 and ds.rows[0]["sentence"].startswith("it 's a \"charming")
    assert ds.rows[1]["label"] == "0"
    # a quoted TSV (as spreadsheets write it) still parses as before
    ds = D.parse_bytes(b'sentence\tlabel\n"a\ttab inside"\t1\n', "q.tsv")
    assert ds.rows[0]["sentence"] == "a\ttab inside"


def test_bundled_reference_brings_its_label_and_text_fields():
    from ptuning_core.engine.experiment import RunSpec, prepare
    spec = RunSpec(template="[P*2] The official language of {subject} is [MASK]",
                   train="facts-language:train", eval="facts-language:test")
    prep = prepare(spec)
    assert spec.label_field == "object" and prep.eval_rows
    # a template written with another field name reads the dataset's text column
    spec = RunSpec(template="{text} [P*2] It was [MASK]", train="sentiment:train",
                   eval="sentiment:test",
                   verbalizer={"negative": ["terrible"], "positive": ["great"]})
    prep = prepare(spec)
    assert spec.label_field == "label"
    assert prep.eval_rows[0]["text"] == prep.eval_rows[0]["sentence"]


@pytest.mark.real
def test_every_facts_relation_evaluates_most_of_its_test_facts(default_backbone):
    """LAMA's rule (single-token objects) must not silently shrink a relation's test set."""
    from ptuning_core.lm.model import PromptModel
    for name in [d for d in D.list_datasets() if d.startswith("facts-")]:
        info = D.dataset_info(name)
        rows = D.load_ref(f"{name}:test").rows
        pm = PromptModel(default_backbone, info["templates"]["causal"], None, "none", 0,
                         info["fields"])
        gold = pm.gold_ids([r["object"] for r in rows])
        share = sum(g >= 0 for g in gold) / len(rows)
        assert share >= 0.8, (name, share)
