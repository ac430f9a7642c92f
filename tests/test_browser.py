"""End to end in a real headless Chromium (Debian's; .ci/run installs it): start
`streamlit run`, type a template, train on the default model, see the loss chart; open a
shared link and run a tiny few-shot sweep. Screenshots go to the test's temp dir (and to
$PTUNING_SCREENSHOTS if set, which is how the README's pictures are made)."""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.real]
# Small runs in tests; realistic ones when making the README's screenshots.
REAL = bool(os.environ.get("PTUNING_SCREENSHOTS"))
SIZES = dict(steps="60", k="16", n_eval="100", cmp_steps="60", cmp_k="8", cmp_n="100",
             ks="2,4,8,16", seeds="2", sweep_steps="40", sweep_n="60") if REAL else \
    dict(steps="8", k="4", n_eval="20", cmp_steps="4", cmp_k="2", cmp_n="12", ks="2,4",
         seeds="1", sweep_steps="3", sweep_n="10")

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian chromium is not installed (apt-get install chromium)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@contextlib.contextmanager
def serve(home: Path, **env_extra):
    """`streamlit run app.py` on a free loopback port with PTUNING_HOME=home (and env_extra);
    yields its URL, stops it after."""
    port = _free_port()
    env = dict(os.environ, PTUNING_HOME=str(home), PYTHONUNBUFFERED="1", **env_extra)
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start:\n" + (home / "server.log").read_text())
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def stored(home: Path, run_id: str, column: str):
    """One column of a run's row in the server's run index (read only: the server writes)."""
    import sqlite3
    c = sqlite3.connect(home / "runs" / "runs.sqlite", timeout=30)
    try:
        row = c.execute(f"SELECT {column} FROM runs WHERE id=?", (run_id,)).fetchone()
    finally:
        c.close()
    return row[0] if row else None


def app_idle(page, timeout=120_000):
    """Wait until the page's script run has ended (Streamlit marks it on the app's root)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        timeout=timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory, default_backbone):
    with serve(tmp_path_factory.mktemp("home")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("PTUNING_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / f"{name}.png")
    assert path.stat().st_size > 10_000
    return path


def test_type_template_train_and_watch_the_loss(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server, wait_until="networkidle")
    box = page.get_by_label("Template", exact=True)
    box.wait_for(timeout=120_000)
    box.fill("{sentence} [P*4] It was [MASK]")
    box.press("Enter")
    page.locator(".token-strip").wait_for(timeout=60_000)
    assert page.locator('.token-strip span[title="pseudo token"]').count() == 4
    shot(page, tmp_path, "studio")
    page.get_by_role("link", name="Train").click()
    steps = page.get_by_label("Steps", exact=True)
    steps.wait_for(timeout=60_000)
    steps.fill(SIZES["steps"])
    page.get_by_label("k-shot (per class; 0 = all)").fill(SIZES["k"])
    page.get_by_label("Evaluate on at most N test examples").fill(SIZES["n_eval"])
    page.get_by_role("button", name="Train").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=180_000)
    page.get_by_text("finished").first.wait_for(timeout=180_000)
    shot(page, tmp_path, "train")
    # a browser refresh: the run is still there on the Runs page
    page.goto(server + "/runs", wait_until="networkidle")
    page.get_by_test_id("stMetricLabel").filter(has_text="continuous").first.wait_for(
        timeout=60_000)
    shot(page, tmp_path, "runs")
    page.goto(server + "/embeddings", wait_until="networkidle")
    page.get_by_text("projection, not an explanation").first.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    shot(page, tmp_path, "embeddings")


def test_shared_link_and_small_sweep(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    tpl = "{sentence} [P*2] It was [MASK]"
    page.goto(f"{server}/?t={quote(tpl)}&d=sentiment&steps=5", wait_until="networkidle")
    box = page.get_by_label("Template", exact=True)
    box.wait_for(timeout=120_000)
    assert box.input_value() == tpl
    page.get_by_role("link", name="Few-shot").click()
    page.get_by_label("k values (per class)").wait_for(timeout=60_000)
    page.get_by_label("k values (per class)").fill(SIZES["ks"])
    page.get_by_label("Seeds", exact=True).fill(SIZES["seeds"])
    page.get_by_label("Steps per run").fill(SIZES["sweep_steps"])
    page.get_by_label("Test examples").fill(SIZES["sweep_n"])
    page.get_by_role("button", name="Run sweep").click()
    page.get_by_text("Download CSV").wait_for(timeout=900_000)
    page.locator(".js-plotly-plot").first.wait_for()
    # one dataset picker (the sidebar's), the finished sweep drawn once, ticks at the k values
    assert page.get_by_role("combobox", name=re.compile("data", re.I)).count() == 1
    end = time.time() + 30
    while page.locator(".js-plotly-plot").count() != 1 and time.time() < end:
        page.wait_for_timeout(500)
    assert page.locator(".js-plotly-plot").count() == 1
    ticks = [t.strip() for t in page.locator(".js-plotly-plot .xtick text").all_text_contents()]
    assert ticks == SIZES["ks"].split(","), ticks
    shot(page, tmp_path, "fewshot")


def test_compare_discrete_and_continuous(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(server + "/compare", wait_until="networkidle")
    page.get_by_role("button", name="Compare").wait_for(timeout=120_000)
    page.get_by_label("Steps", exact=True).fill(SIZES["cmp_steps"])
    page.get_by_label("k per class").fill(SIZES["cmp_k"])
    page.get_by_label("Test examples").fill(SIZES["cmp_n"])
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("examples changed").first.wait_for(timeout=600_000)
    page.locator(".js-plotly-plot").first.wait_for()
    shot(page, tmp_path, "compare")
