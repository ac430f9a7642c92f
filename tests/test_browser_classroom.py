"""The classroom in a real headless Chromium: two students (two browser contexts, so two cookie
jars) and a teacher (a third), on one `streamlit run` server with a teacher code.

- B cannot stop, rename, unshare or delete A's run (no such controls; the core refuses too:
  tests/test_classroom.py);
- A refreshes and sees its run live as its own, with its name, template and upload;
- both students see both runs in the queue, with owners, live;
- the teacher enters the code, stops B's run and takes A's entry off the class board."""
import re
import time

import pytest

from test_browser import app_idle, browser, serve, shot, stored  # noqa: F401 (a fixture)

# This walk used to fail now and then on 2 cores (a click swallowed by a redraw, a share that
# never reached the board): Streamlit's full garbage collection after every script run, which
# every open page's live panels trigger each 1-2 s, held the GIL a third of a second each time
# and starved the server. .streamlit/config.toml turns it off (runner.postScriptGC).
pytestmark = [pytest.mark.browser, pytest.mark.real]
CODE = "owl-lantern-42"
NAME_BOX = "Your name (shown on the queue and the class board)"
A_TPL = "{text} [P*2] so it was [MASK]"
CSV = b"text,label\n" + b"".join(f"the {w} movie number {i},{lab}\n".encode() for i, (w, lab)
                                 in enumerate([("great", "good"), ("awful", "bad")] * 20))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("class-home")


@pytest.fixture(scope="module")
def server(home, default_backbone):
    with serve(home, PTUNING_TEACHER_CODE=CODE,
               PTUNING_MAX_STEPS="5000") as url:  # runs that last the whole test
        yield url


def open_app(browser, url, path=""):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url + path, wait_until="networkidle")
    page.get_by_label(NAME_BOX).wait_for(timeout=120_000)
    return page


def set_name(page, name):
    box = page.get_by_label(NAME_BOX)
    box.fill(name)
    box.press("Enter")
    page.wait_for_timeout(1500)


def settle(page, label, want, seconds=30):
    """Wait (bounded) until the field shows ``want``: a new page is drawn again as it settles."""
    for _ in range(seconds):
        if page.get_by_label(label, exact=True).input_value() == want:
            return
        page.wait_for_timeout(1000)


def until(cond, what, timeout=120):
    """Wait once, generously, for a condition the server's own records show (``what``: the
    failure's message, or a function that writes it then)."""
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, what() if callable(what) else what
        time.sleep(1)


def queue_shows(page, *present, absent=(), timeout=90):
    """Wait until the live queue (it refreshes itself every two seconds) shows every string
    in ``present`` and none in ``absent``; its text."""
    end = time.time() + timeout
    while True:
        table = page.locator('[data-testid="stTable"]')
        text = table.last.inner_text() if table.count() else ""
        if all(x in text for x in present) and not any(x in text for x in absent):
            return text
        assert time.time() < end, f"the queue shows {text!r}"
        page.wait_for_timeout(1000)


def train(page, name, steps="3000"):
    page.get_by_role("link", name="Train").click()
    page.get_by_label("Steps", exact=True).wait_for(timeout=60_000)
    page.get_by_label("Steps", exact=True).fill(steps)
    page.get_by_label("k-shot (per class; 0 = all)").fill("4")
    page.get_by_label("Evaluate on at most N test examples").fill("10")
    page.get_by_label("Run name (optional)").fill(name)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("Run id").wait_for(timeout=120_000)
    return re.search(r"Run id (\w+)", page.get_by_text("Run id").inner_text()).group(1)


def test_two_students_and_a_teacher(server, home, browser, tmp_path):  # noqa: F811
    # ---- student A: a name, an upload, a template of their own, a long run ------------------
    a = open_app(browser, server)
    set_name(a, "Ada")
    a.get_by_text("Upload CSV / TSV / JSONL").click()
    a.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "reviews.csv", "mimeType": "text/csv", "buffer": CSV}])
    a.get_by_role("button", name="Use this file").click()
    a.get_by_text("your file reviews.csv").wait_for(timeout=60_000)
    box = a.get_by_label("Template", exact=True)
    box.fill(A_TPL)
    box.press("Enter")
    a.locator(".token-strip").wait_for(timeout=60_000)
    a.wait_for_timeout(1500)
    a_run = train(a, "Ada's run")
    a.get_by_role("button", name="Stop", exact=True).wait_for(timeout=60_000)

    # ---- student B: another browser, another identity ----------------------------------------
    b = open_app(browser, server)
    set_name(b, "Bo")
    b_run = train(b, "Bo's run")
    assert a_run != b_run
    # both students see both runs, live, with their owners
    queue_shows(a, "Ada's run", "Ada (you)", "Bo's run", "Bo")
    queue_shows(b, "Ada's run", "Ada", "Bo's run", "Bo (you)")
    shot(b, tmp_path, "classroom-queue")

    # B looks at A's run: read-only (no Stop, Rename, Delete, share toggle)
    b.goto(f"{server}/runs?run={a_run}", wait_until="networkidle")
    b.get_by_text("This run belongs to Ada").wait_for(timeout=60_000)
    b.get_by_text("Ada's run: you can watch, not stop it").wait_for(timeout=30_000)
    for label in ("Stop", "Rename", "Delete"):
        assert b.get_by_role("button", name=label, exact=True).count() == 0
    assert b.get_by_text("Manage this run").count() == 0
    assert b.get_by_role("button", name=re.compile("^Stop Ada")).count() == 0

    # A shares its run on the class board: one click, then the share is in the run index
    a.goto(f"{server}/runs?run={a_run}", wait_until="networkidle")
    a.get_by_text("Manage this run").click()
    toggle = a.get_by_role("switch", name="Shared on the class board")
    toggle.wait_for(state="attached", timeout=60_000)
    assert not toggle.is_checked() and stored(home, a_run, "shared") == 0
    app_idle(a)
    a.get_by_text("Shared on the class board").click()
    until(lambda: stored(home, a_run, "shared") == 1, "A's share did not reach the server")
    a.get_by_role("link", name="Class board").click()  # the share has landed: it is listed
    a.get_by_text("Ranked by the lower end").wait_for(timeout=120_000)

    # ---- A refreshes (and opens a new tab): its run is live and its own ----------------------
    a.goto(f"{server}/train", wait_until="networkidle")
    a.reload(wait_until="networkidle")
    a.get_by_text("Current run").wait_for(timeout=60_000)
    settle(a, NAME_BOX, "Ada")
    assert a.get_by_label(NAME_BOX).input_value() == "Ada"
    a.get_by_text(A_TPL).first.wait_for(timeout=30_000)  # "Template: ..." on the Train page
    a.get_by_text("data: upload:reviews.csv").wait_for(timeout=30_000)
    a.get_by_role("button", name="Stop", exact=True).wait_for(timeout=60_000)
    assert a_run in a.get_by_text("Run id").inner_text()
    tab = a.context.new_page()
    tab.goto(server, wait_until="networkidle")
    tab.get_by_label("Template", exact=True).wait_for(timeout=120_000)
    settle(tab, "Template", A_TPL)
    # the template typed just before clicking Train is the one kept (tests/test_remember.py)
    assert tab.get_by_label("Template", exact=True).input_value() == A_TPL
    assert tab.get_by_label(NAME_BOX).input_value() == "Ada"
    tab.close()
    shot(a, tmp_path, "classroom-refresh")

    # ---- the teacher --------------------------------------------------------------------------
    t = open_app(browser, server)
    set_name(t, "Ms Teach")
    t.get_by_text("Teacher", exact=True).click()
    t.get_by_label("Teacher code").fill("not-the-code")
    t.get_by_role("button", name="Enter teacher mode").click()
    t.get_by_text("that is not the teacher code").wait_for(timeout=30_000)
    t.get_by_label("Teacher code").fill(CODE)
    t.get_by_role("button", name="Enter teacher mode").click()
    t.get_by_role("button", name="Leave teacher mode").wait_for(timeout=30_000)
    t.get_by_role("link", name="Train").click()
    stop_b = t.get_by_role("button", name="Stop Bo's run (Bo)")
    stop_b.wait_for(timeout=60_000)
    assert t.get_by_role("button", name="Stop Ada's run (Ada)").count() == 1
    # One click (after the teacher's page has settled); then Bo's run is stopped (running) or
    # cancelled (still queued behind Ada's) in the run index, and A's live queue drops it,
    # without A reloading.
    app_idle(t)
    before = stored(home, b_run, "status")
    assert before in ("queued", "running"), before
    stop_b.click()
    until(lambda: stored(home, b_run, "status") in ("stopped", "cancelled"),
          lambda: f"the teacher's Stop did not end Bo's run (it was {before}, it is "
                  f"{stored(home, b_run, 'status')})")
    queue_shows(a, "Ada's run", absent=("Bo's run",), timeout=120)  # A's queue, live
    b.get_by_role("link", name="Train").click()
    queue_shows(b, "Ada's run", absent=("Bo's run",))
    t.get_by_role("link", name="Class board").click()
    t.get_by_role("button", name="Remove from the board").wait_for(timeout=60_000)
    t.get_by_role("button", name="Remove from the board").click()
    t.get_by_text("Nothing shared yet").wait_for(timeout=30_000)
    shot(t, tmp_path, "classroom-teacher")
    # A stops its own run (what it learned is kept)
    a.get_by_role("button", name="Stop", exact=True).click()
    a.get_by_text("stopp").first.wait_for(timeout=30_000)
    for p in (a, b, t):
        p.context.close()
