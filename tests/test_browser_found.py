"""Issue 11's "Also found, tried as a new user would", each walked through in a real headless
Chromium on one `streamlit run` server (the default model): the upload that must not raise;
Rename that keeps the picker on the renamed run (showing its new name); a broken Studio
template that Train warns about; class board rows with the run name, n and the 95% interval; Compare on
a template without pseudo tokens; Embeddings' "Only word-like tokens" toggle and trajectory
slider; the Train page's links open their pages; the queue list stays true while runs start,
queue and stop; Stop says "stopping…" at once; Template Studio's preview follows the template
typed last. Streamlit shows an exception as ``data-testid="stException"``: none may appear."""
import re
import time

import pytest

from ptuning_core.data.bundled import dataset_info
from test_browser import app_idle, browser, serve, shot, stored  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.real]
CSV = b"text,label\n" + b"".join(f"the {w} movie number {i},{lab}\n".encode() for i, (w, lab)
                                 in enumerate([("great", "good"), ("awful", "bad")] * 20))
T = 120_000  # ms: two busy cores


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("found-home")


@pytest.fixture(scope="module")
def server(home, default_backbone):
    with serve(home) as url:
        yield url


def open_page(browser, url):  # noqa: F811
    """A new browser context (its own cookie jar: a new user) on the app's first page (a
    server's very first session opened on a page's path may be drawn before app.py has set up
    its navigation)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url, wait_until="networkidle")
    page.get_by_label("Your name (shown on the queue and the class board)").wait_for(timeout=T)
    return page


def no_exception(page):
    assert page.get_by_test_id("stException").count() == 0, page.inner_text("body")[:3000]


def wait_until(cond, what, timeout=90):
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, what
        time.sleep(1)


def grid_cells(page):
    """Texts of every st.dataframe cell on the page (the grid draws on a canvas; its
    accessible table holds the same cells, attached but hidden)."""
    return [t.strip() for t in page.locator('[role="gridcell"]').all_text_contents()]


def run_id_shown(page):
    el = page.get_by_text("Run id")
    if not el.count():
        return None
    m = re.search(r"Run id (\w+)", el.first.inner_text())
    return m.group(1) if m else None


def submit(page, name="", steps="6"):
    """Submit a small run (k=4, 10 test examples) from the Train page."""
    page.get_by_label("Steps", exact=True).wait_for(timeout=T)
    page.get_by_label("Steps", exact=True).fill(steps)
    page.get_by_label("k-shot (per class; 0 = all)").fill("4")
    page.get_by_label("Evaluate on at most N test examples").fill("10")
    page.get_by_label("Run name (optional)").fill(name)
    page.get_by_role("button", name="Train").click()


def train(page, name, before=None):
    """Submit a small run from the Train page; wait until it finished; its id."""
    submit(page, name)
    wait_until(lambda: run_id_shown(page) not in (None, before), f"no run id for {name}", 120)
    rid = run_id_shown(page)
    page.get_by_text(re.compile(r"Status:\s*finished")).first.wait_for(timeout=300_000)
    no_exception(page)
    return rid


@pytest.fixture(scope="module")
def student(server, browser):  # noqa: F811
    """One user who trained two small runs: (page, [first id, second id])."""
    page = open_page(browser, server)
    page.get_by_role("link", name="Train").click()
    first = train(page, "first run")
    second = train(page, "second run", before=first)
    assert first != second
    yield page, [first, second]
    page.context.close()


# ---- 1. Upload -> "Use this file": no widget error, the upload is the dataset, a reload keeps
# it (the click itself keeps the upload and the dataset it chose with the identity) -----------
def test_upload_use_this_file(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server)
    page.get_by_text("Upload CSV / TSV / JSONL").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "reviews.csv", "mimeType": "text/csv", "buffer": CSV}])
    page.get_by_role("button", name="Use this file").click()
    data = page.get_by_role("combobox", name="Data", exact=True)  # the sidebar's picker
    wait_until(lambda: data.input_value() == "upload:reviews.csv", "the upload is not selected")
    page.get_by_text("your file reviews.csv").first.wait_for(timeout=T)
    no_exception(page)
    assert "StreamlitWidgetAlreadyInstantiatedError" not in page.inner_text("body")
    shot(page, tmp_path, "found-upload")
    page.reload(wait_until="networkidle")
    data = page.get_by_role("combobox", name="Data", exact=True)
    data.wait_for(timeout=T)
    wait_until(lambda: data.input_value() == "upload:reviews.csv",
               "a reload lost the upload", 60)
    no_exception(page)
    page.context.close()


# ---- 2. Runs -> Rename keeps the picker on the renamed run -----------------------------------
def test_rename_keeps_the_picker_on_the_run(server, student, home, tmp_path):
    page, (first, second) = student
    page.goto(f"{server}/runs?run={first}", wait_until="networkidle")
    picker = page.get_by_role("combobox", name="Open a run")
    picker.wait_for(timeout=T)
    wait_until(lambda: first in picker.input_value(), "the link did not open the first run")
    page.get_by_text("Manage this run").click()
    box = page.get_by_label("Name", exact=True)
    box.wait_for(timeout=T)
    box.fill("renamed run")
    box.press("Enter")
    app_idle(page)  # the new name has reached the server; one click renames
    page.get_by_role("button", name="Rename").click()
    wait_until(lambda: stored(home, first, "name") == "renamed run", "Rename did not land", 90)
    wait_until(lambda: "renamed run" in picker.input_value(),
               "the picker does not show the new name", 90)
    text = picker.input_value()
    assert first in text and second not in text, text  # still on the run just renamed
    page.get_by_role("heading", name="renamed run").wait_for(timeout=T)
    no_exception(page)
    shot(page, tmp_path, "found-rename")


# ---- 3. A broken Studio template: an error there, a warning on Train ------------------------
def test_broken_template_error_and_train_warns(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server)
    box = page.get_by_label("Template", exact=True)
    box.wait_for(timeout=T)
    page.locator(".token-strip").wait_for(timeout=T)  # the dataset's template compiles
    box.fill("{sentence} [P*2 It was [MASK]")
    box.press("Enter")
    page.locator('[data-testid="stAlertContentError"]').first.wait_for(timeout=T)
    assert page.locator(".token-strip").count() == 0
    no_exception(page)
    shot(page, tmp_path, "found-broken-studio")
    page.get_by_role("link", name="Train").click()
    page.get_by_text("has an error").first.wait_for(timeout=T)
    line = page.locator("p").filter(has_text="Template:").first.inner_text()
    assert "[P*2 It was" not in line, line  # Train keeps the last template that worked
    no_exception(page)
    page.context.close()


# ---- 4. Class board rows: run name, n and the 95% interval ---------------------------------
def test_class_board_shows_name_n_and_interval(server, student, home, tmp_path):
    page, (first, second) = student
    page.goto(f"{server}/runs?run={second}", wait_until="networkidle")
    picker = page.get_by_role("combobox", name="Open a run")
    picker.wait_for(timeout=T)
    wait_until(lambda: second in picker.input_value(), "the link did not open the second run")
    page.get_by_text("Manage this run").click()
    toggle = page.get_by_role("switch", name="Shared on the class board")
    toggle.wait_for(state="attached", timeout=T)
    assert not toggle.is_checked() and stored(home, second, "shared") == 0
    app_idle(page)
    page.get_by_text("Shared on the class board").click()
    wait_until(lambda: stored(home, second, "shared") == 1, "the toggle did not share the run",
               90)
    page.get_by_role("link", name="Class board").click()
    page.get_by_text("Ranked by the lower end").wait_for(timeout=T)
    wait_until(lambda: "second run" in grid_cells(page), "the board has no run name", 60)
    headers = [t.strip() for t in page.locator('[role="columnheader"]').all_text_contents()]
    assert "n" in headers and "95% CI" in headers and "name" in headers, headers
    cells = grid_cells(page)
    assert "10" in cells, cells  # n: the run was tested on 10 examples
    assert any(re.fullmatch(r"\d+\.\d% \[\d+\.\d, \d+\.\d\]", c) for c in cells), cells
    no_exception(page)
    shot(page, tmp_path, "found-board")


# ---- 5. Compare on a template without pseudo tokens -----------------------------------------
def test_compare_discrete_only_template(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server)
    box = page.get_by_label("Template", exact=True)
    box.wait_for(timeout=T)
    page.locator(".token-strip").wait_for(timeout=T)
    box.fill("{sentence} It was [MASK]")
    box.press("Enter")
    page.locator('.token-strip span[title="label slot"]').wait_for(timeout=T)
    page.wait_for_timeout(1000)
    assert page.locator('.token-strip span[title="pseudo token"]').count() == 0
    page.get_by_role("link", name="Compare").click()
    page.get_by_role("button", name="Compare").wait_for(timeout=T)
    page.get_by_text("{sentence} It was [MASK]").first.wait_for(timeout=T)
    page.get_by_label("Steps", exact=True).fill("2")
    page.get_by_label("k per class").fill("2")
    page.get_by_label("Test examples").fill("10")
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("examples changed").first.wait_for(timeout=600_000)
    no_exception(page)
    wait_until(lambda: {"discrete", "P-tuning (lstm)", "prompt tuning (none)"} <=
               set(grid_cells(page)), "the comparison table lacks its rows", 60)
    shot(page, tmp_path, "found-compare-discrete")
    page.context.close()


# ---- 6. Embeddings: the word-like toggle acts; one slider position per snapshot -------------
def test_embeddings_toggle_and_slider(server, student, home, tmp_path):
    from safetensors import safe_open
    page, (first, second) = student
    page.goto(f"{server}/embeddings?run={second}", wait_until="networkidle")
    page.get_by_text("projection, not an explanation").first.wait_for(timeout=T)

    def nearest():
        return [c for c in grid_cells(page) if "(" in c and "'" in c]

    def tokens(cells):
        return [t for c in cells for t in re.findall(r"'(.*?)' \(", c)]

    def word_like(t):  # ptuning_core.lm.projections' rule, for a tokenizer that marks spaces
        return t.startswith(" ") and re.fullmatch(r"[A-Za-z][A-Za-z'-]+", t[1:]) is not None

    wait_until(lambda: nearest(), "no nearest-token table", 120)
    before = nearest()
    page.get_by_text("Only word-like tokens").click()
    toggle = page.get_by_role("switch", name="Only word-like tokens")
    wait_until(lambda: toggle.is_checked(), "the toggle did not turn on", 60)
    if all(word_like(t) for t in tokens(before)):
        # random-start pseudo tokens after the input (today's default) often sit nearest to
        # words already: then the table cannot change; it must stay all words
        app_idle(page)
        assert tokens(nearest()) and all(word_like(t) for t in tokens(nearest())), nearest()
    else:
        wait_until(lambda: nearest() and nearest() != before
                   and all(word_like(t) for t in tokens(nearest())),
                   "'Only word-like tokens' did not leave only words", 120)
    no_exception(page)
    traj = list(home.glob(f"**/{second}/trajectory.safetensors"))
    assert traj, "the run stored no trajectory"
    with safe_open(str(traj[0]), "pt") as f:
        steps = sorted(int(k.split("_")[1]) for k in f.keys())
    assert len(steps) >= 2, steps
    slider = page.locator('[data-testid="stSlider"] input[type="range"]'
                          '[aria-label="Training step"]')
    slider.wait_for(state="attached", timeout=T)
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == \
        ("0", str(len(steps) - 1))  # one position per stored snapshot
    assert slider.get_attribute("aria-valuetext") == str(steps[-1])
    shot(page, tmp_path, "found-embeddings")


# ---- 7. The links the Train page prints open their pages -----------------------------------
def test_train_page_links_open(server, student, tmp_path):
    page, (first, second) = student
    page.goto(f"{server}/train", wait_until="networkidle")
    cap = page.get_by_text(re.compile(r"Run id \w+ · link: "))
    cap.first.wait_for(timeout=T)
    link = re.search(r"link: (\S+)", cap.first.inner_text()).group(1)
    assert link.startswith(server + "/runs?run="), link
    other = page.context.new_page()
    other.goto(link, wait_until="networkidle")
    picker = other.get_by_role("combobox", name="Open a run")
    picker.wait_for(timeout=T)
    rid = link.rsplit("=", 1)[1]
    wait_until(lambda: rid in picker.input_value(), "the run link opened another run", 60)
    no_exception(other)
    page.get_by_text("Share these settings").click()
    code = page.locator('[data-testid="stCode"]').filter(has_text="/train?").first
    code.wait_for(timeout=T)
    share = code.inner_text().strip()
    assert share.startswith(server + "/train?") and "t=" in share, share
    other.goto(re.sub(r"&steps=\d+", "", share) + "&steps=7", wait_until="networkidle")
    steps = other.get_by_label("Steps", exact=True)
    steps.wait_for(timeout=T)
    wait_until(lambda: steps.input_value() == "7", "the shared link did not set the steps", 60)
    default = dataset_info("sentiment")["ptuning_templates"]["causal"]
    other.get_by_text(default).first.wait_for(timeout=T)
    no_exception(other)
    other.close()


def queue_table(page):
    """{run name: state} of the Train page's queue table ({} when the queue is empty)."""
    rows = {}
    for tr in page.locator('[data-testid="stTable"] tbody tr').all():
        cells = [c.strip() for c in tr.locator("td, th").all_inner_texts()]
        if len(cells) >= 5:
            rows[cells[1]] = cells[4]
    return rows


# ---- 8. Queue list, two runs, Stop (the running one) says "stopping…" at once ------------
def test_queue_list_and_stop(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server)
    page.get_by_role("link", name="Train").click()
    submit(page, "long run", "400")
    page.get_by_text(re.compile(r"step \d+/400")).first.wait_for(timeout=T)  # it trains
    submit(page, "short run", "3")
    # both in the class queue: the long one running, the short one waiting behind it
    wait_until(lambda: queue_table(page).get("long run") == "running"
               and queue_table(page).get("short run") == "queued",
               f"the queue list does not show both runs: {queue_table(page)}", 60)
    # "Stop" under Current run stops the running run, not the one queued behind it (issue 24)
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("stopping").first.wait_for(timeout=5_000)  # at once, not after a step
    assert queue_table(page).get("short run") in ("queued", "running"), queue_table(page)
    # the short run trains next; when both are done the list says so (nothing stale)
    wait_until(lambda: "The queue is empty." in page.inner_text("body"),
               f"the queue list went stale: {queue_table(page)}", 240)
    no_exception(page)
    page.goto(f"{server}/runs", wait_until="networkidle")
    page.get_by_role("combobox", name="Open a run").wait_for(timeout=T)
    wait_until(lambda: "long run" in grid_cells(page), "the stopped run was not kept", 60)
    page.context.close()


def test_stop_button_says_stopping_and_drops_the_eta(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server)
    page.get_by_role("link", name="Train").click()
    submit(page, steps="400")
    # every phase says what it does: before the first step too
    page.get_by_text(re.compile(r"preparing|evaluating the discrete prompt|step \d+/400"))\
        .first.wait_for(timeout=T)
    page.get_by_text(re.compile(r"step \d+/400")).first.wait_for(timeout=T)
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("stopping…").first.wait_for(timeout=5_000)
    page.get_by_text(re.compile(r"Status:\s*(stopped|finished)")).first.wait_for(timeout=T)
    assert "ETA" not in page.inner_text("body")
    no_exception(page)
    shot(page, tmp_path, "found-stopped")
    page.context.close()


# ---- 9. Template Studio: the preview follows the template typed last ------------------------
def test_studio_preview_follows_the_last_template(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server)
    box = page.get_by_label("Template", exact=True)
    box.wait_for(timeout=T)
    page.locator(".token-strip").wait_for(timeout=T)
    for tpl in ("{sentence} [P*2] In short, [MASK]", "{sentence} [P*3] Overall it was [MASK]"):
        box.fill(tpl)
        box.press("Enter")
    want = "{sentence} Overall it was [MASK]"  # the discrete version of the last one
    page.get_by_text(f"discrete template: {want}").first.wait_for(timeout=T)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=T)
    assert page.locator('.token-strip span[title="pseudo token"]').count() == 3
    assert "In short" not in page.locator(".token-strip").first.inner_text()
    no_exception(page)
    page.context.close()
