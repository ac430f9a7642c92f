"""Data in the app (AppTest on a tiny model): Hugging Face references typed in the sidebar,
uploads, intervals and paired tests on Compare and the class board, links from the app root."""
import pytest

from ptuning_core.stats import ci95


def test_links_are_absolute_from_the_app_root():
    from ui.common import app_root
    assert app_root("http://h:8501/train?t=x") == "http://h:8501"
    assert app_root("http://h:8501/") == "http://h:8501"
    assert app_root("http://h:8501") == "http://h:8501"
    assert app_root("https://school.org/ptuning/runs?run=abc") == "https://school.org/ptuning"
    assert app_root("https://school.org/ptuning/") == "https://school.org/ptuning"


def test_hf_dataset_typed_in_the_sidebar(tiny_app, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    import datasets.config as dcfg
    from datasets import ClassLabel, Dataset, Features, Value
    monkeypatch.setattr(dcfg, "HF_DATASETS_CACHE", tmp_path / "cache")
    src = tmp_path / "src" / "shopreviews"
    src.mkdir(parents=True)
    feat = Features({"review": Value("string"), "label": ClassLabel(names=["bad", "good"])})
    for split in ("train", "test"):
        Dataset.from_dict({"review": [f"{split} {w} item {i}" for i, w in
                                      enumerate(["nice", "awful"] * 6)],
                           "label": [1, 0] * 6}, features=feat).to_parquet(
            str(src / f"{split}.parquet"))
    datasets.load_dataset(str(src), split="train")  # now cached under 'shopreviews'
    svc, page = tiny_app
    from ptuning_core.data.bundled import DataError
    with pytest.raises(DataError, match="hf:shopreviews:nosuch"):
        svc.data.open_hf_dataset("hf:shopreviews:nosuch", "hf:shopreviews:test", ["review"], "label")
    with pytest.raises(DataError, match="no column 'sentence'"):
        svc.data.open_hf_dataset("hf:shopreviews:train", "hf:shopreviews:test", ["sentence"], "label")
    with pytest.raises(DataError, match="not of the form"):
        svc.data.open_hf_dataset("glue/sst2:train", "hf:shopreviews:test", ["review"], "label")
    ctx = svc.data.open_hf_dataset("hf:shopreviews:train", "hf:shopreviews:test", ["review"], "label")
    assert ctx["classes"] == ["bad", "good"]  # the class names come from the dataset's features
    # what the sidebar's "Use this dataset" button stores (AppTest drops sidebar widgets on
    # reruns under st.navigation, so the button itself is driven in the browser test)
    at = page(hfdata=ctx, _dataset_next=ctx["name"])
    assert at.session_state["dataset"] == "hf:shopreviews"
    assert at.text_input(key="template_input").value == "{review} [P*4] It was [MASK]"
    assert any("good" in df.value.columns for df in at.dataframe)  # zero-shot preview


def test_upload_use_this_file_no_widget_error(tiny_app):
    svc, page = tiny_app
    who = svc._core.classroom.sign_in(None)[0]
    up = svc.data.save_upload(who, b"text,y\n" + b"".join(f"row {i},{'ab'[i % 2]}\n".encode()
                                                    for i in range(20)), "mine.csv", ["text"], "y")
    at = page(_dataset_next=up["name"], upload=up)
    assert not at.exception
    assert at.session_state["dataset"] == "upload:mine.csv"


def _stored(svc, name, acc, n, shared=True):
    rid = svc._core.store.create(name, {"template": "{sentence} [P] It was [MASK]",
                                  "train": "sentiment:train"}, "someone")
    res = {"discrete": {"template": "t", "accuracy": 0.5, "n": n, "ci95": ci95(0.5, n)},
           "continuous": {"template": "t", "accuracy": acc, "n": n, "ci95": ci95(acc, n)}}
    svc._core.store.finish(rid, "finished", res)
    if shared:
        svc._core.store.share(rid, True, name)
    return rid


def test_class_board_ranks_by_the_interval_and_shows_n(tiny_app):
    svc, page = tiny_app
    small = _stored(svc, "lucky", 0.95, 20)
    big = _stored(svc, "steady", 0.88, 400)
    at = page("app_pages/board.py")
    df = at.dataframe[0].value
    assert df["run"].tolist() == [big, small]  # 0.88 on 400 outranks 0.95 on 20
    assert {"name", "n", "95% CI"} <= set(df.columns)
    assert df["n"].tolist() == [400, 20]


def test_broken_studio_template_is_not_carried_to_train(tiny_app):
    svc, page = tiny_app
    at = page()
    good = "{sentence} [P*2] It was [MASK]"
    at.text_input(key="template_input").set_value(good).run()
    at.text_input(key="template_input").set_value("{sentence} [P*2 It was [MASK]").run()
    assert at.error
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception
    assert any("has an error" in w.value for w in at.warning)
    assert any(good in m.value for m in at.markdown)
