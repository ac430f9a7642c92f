"""hf:NAME[/CONFIG]:SPLIT references: built here with `datasets`, read offline from the cache."""
import time

import pytest

datasets = pytest.importorskip("datasets")

from ptuning_core.data import bundled as D  # noqa: E402
from ptuning_core.data import hfdata  # noqa: E402


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A datasets cache holding 'toyreviews' (as if downloaded once), read offline."""
    import datasets.config as dcfg
    from datasets import ClassLabel, Dataset, Features, Value
    cache = tmp_path / "hfcache"
    monkeypatch.setattr(dcfg, "HF_DATASETS_CACHE", cache)
    monkeypatch.delenv("PTUNING_HF_DOWNLOAD", raising=False)
    src = tmp_path / "src" / "toyreviews"
    src.mkdir(parents=True)
    feat = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"]),
                     "idx": Value("int32")})
    for split, n in (("train", 12), ("validation", 4)):
        Dataset.from_dict({"text": [f"{split} review number {i}" for i in range(n)],
                           "label": [i % 2 for i in range(n)], "idx": list(range(n))},
                          features=feat).to_parquet(str(src / f"{split}.parquet"))
    datasets.load_dataset(str(src), split="train")  # fills the cache under the name 'toyreviews'
    return tmp_path


def test_parse_refs():
    r = hfdata.parse_ref("hf:glue/sst2:validation")
    assert (r.path, r.config, r.split, r.alt) == ("glue/sst2", None, "validation", ("glue", "sst2"))
    r = hfdata.parse_ref("hf:nyu-mll/glue/sst2:train[:100]")
    assert (r.path, r.config, r.split) == ("nyu-mll/glue", "sst2", "train[:100]")
    assert hfdata.parse_ref("hf:./here:test").local
    for bad in ("hf:", "hf:glue", "hf:glue/sst2", "hf::train", "hf:a b:train", "hf:x:tr ain",
                "hf:a/b/c/d:train"):
        with pytest.raises(D.DataError):
            hfdata.parse_ref(bad)


def test_cached_dataset_by_name_offline_with_class_names(hf_cache):
    ds = D.load_ref("hf:toyreviews:validation")
    assert len(ds) == 4 and ds.columns == ["text", "label", "idx"]
    assert [r["label"] for r in ds.rows] == ["negative", "positive"] * 2  # ClassLabel -> names
    assert ds.rows[1]["idx"] == "1"
    sl = D.load_ref("hf:toyreviews:train[:5]")
    assert len(sl) == 5


def test_not_cached_is_one_line_at_once(hf_cache):
    t = time.monotonic()
    with pytest.raises(D.DataError, match="not in the local datasets cache") as e:
        D.load_ref("hf:nobody/nothing-here:train")
    assert time.monotonic() - t < 10 and "\n" not in str(e.value)
    with pytest.raises(D.DataError, match="validation|split"):
        D.load_ref("hf:toyreviews:nosuchsplit")


def test_local_folder_and_save_to_disk(tmp_path):
    from datasets import Dataset, DatasetDict
    d = DatasetDict({"train": Dataset.from_dict({"sentence": ["a", "b"], "label": ["x", "y"]})})
    d.save_to_disk(str(tmp_path / "saved"))
    ds = D.load_ref(f"hf:{tmp_path / 'saved'}:train")
    assert [r["sentence"] for r in ds.rows] == ["a", "b"]
    with pytest.raises(D.DataError, match="no split"):
        D.load_ref(f"hf:{tmp_path / 'saved'}:test")
    with pytest.raises(D.DataError, match="no folder"):
        D.load_ref(f"hf:{tmp_path / 'absent'}:train")


def test_run_prepares_with_column_mapping(hf_cache):
    """A run reads {sentence} from the dataset's 'text' column; labels outside the verbalizer
    are refused before anything runs."""
    from ptuning_core.engine.experiment import RunSpec, prepare
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="hf:toyreviews:train",
                   eval="hf:toyreviews:validation",
                   verbalizer={"negative": ["bad"], "positive": ["good"]},
                   text_fields=["sentence=text"])
    prep = prepare(spec)
    assert spec.label_field == "label" and len(prep.eval_rows) == 4
    assert prep.eval_rows[0]["sentence"] == "validation review number 0"
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="hf:toyreviews:train",
                   eval="hf:toyreviews:validation", verbalizer={"good": ["good"], "bad": ["bad"]},
                   text_fields=["sentence=text"])
    with pytest.raises(D.DataError, match="not one of the verbalizer's classes"):
        prepare(spec)
    spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="hf:toyreviews:train",
                   eval="hf:toyreviews:validation",
                   verbalizer={"negative": ["bad"], "positive": ["good"]})
    with pytest.raises(D.DataError, match="no column 'sentence'"):
        prepare(spec)
