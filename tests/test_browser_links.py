"""Issue 24's link flows in a real headless Chromium: a Train share link made after typing the
form's numbers (and a Compare one), opened in a fresh browser context (a new user: no cookie),
restores exactly those settings; and a deep link that is the very first request of a freshly
started server (no model loaded in its process yet) shows a loading message, then the whole
app (entry point, sidebar, the link's settings), never a traceback."""
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from test_browser import browser, serve, shot  # noqa: F401 (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.real]
T = 120_000  # ms: two busy cores
NAME = "Your name (shown on the queue and the class board)"


@pytest.fixture(scope="module")
def server(tmp_path_factory, default_backbone):
    with serve(tmp_path_factory.mktemp("links-home")) as url:
        yield url


def no_exception(page):
    assert page.get_by_test_id("stException").count() == 0, page.inner_text("body")[:3000]


def set_number(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")  # a number input commits on Enter (or leaving it)


def wait_url(page, **want):
    """Until the address bar carries ``want`` (the page writes its settings there)."""
    end = time.time() + 60
    while True:
        q = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
        if all(q.get(k) == str(v) for k, v in want.items()):
            return q
        assert time.time() < end, (page.url, want)
        page.wait_for_timeout(300)


def share_link(page, path):
    page.get_by_text("Share these settings").click()
    code = page.locator("code").filter(has_text=f"/{path}?").first
    code.wait_for(timeout=T)
    return code.inner_text().strip()


def fresh(browser, url):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url, wait_until="networkidle")
    return page


def test_share_link_round_trip_with_the_form_s_numbers(server, browser, tmp_path):  # noqa: F811
    page = fresh(browser, server + "/train")
    page.get_by_label("Seed", exact=True).wait_for(timeout=T)
    typed = {"Steps": 25, "Learning rate": "0.005000", "Seed": 42,
             "k-shot (per class; 0 = all)": 8}
    for label, value in typed.items():
        set_number(page, label, value)
    wait_url(page, steps=25, seed=42, k=8, lr=0.005)  # no Train click needed
    link = share_link(page, "train")
    q = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert (q["steps"], q["seed"], q["k"], float(q["lr"])) == ("25", "42", "8", 0.005), link
    assert q["t"] and q["d"] == "sentiment"
    shot(page, tmp_path, "links-train-made")
    page.context.close()

    other = fresh(browser, link)  # a new user opens the link
    other.get_by_label("Seed", exact=True).wait_for(timeout=T)
    got = {label: other.get_by_label(label, exact=True).input_value() for label in typed}
    assert got == {k: str(v) for k, v in typed.items()}, got
    assert other.get_by_label(NAME).count() == 1  # the whole app: sidebar, identity
    assert q["t"] in other.inner_text("body")  # the template it was made with
    no_exception(other)
    shot(other, tmp_path, "links-train-opened")
    other.context.close()

    # Compare's settings travel the same way
    page = fresh(browser, server + "/compare")
    page.get_by_role("button", name="Compare").wait_for(timeout=T)
    set_number(page, "Seed", 7)
    set_number(page, "k per class", 4)
    set_number(page, "Test examples", 30)
    wait_url(page, seed=7, k=4, n=30)
    link = share_link(page, "compare")
    page.context.close()
    other = fresh(browser, link)
    other.get_by_role("button", name="Compare").wait_for(timeout=T)
    got = [other.get_by_label(x, exact=True).input_value() for x in
           ("Seed", "k per class", "Test examples")]
    assert got == ["7", "4", "30"], (got, link)
    no_exception(other)
    other.context.close()


def test_a_link_to_a_run_that_is_not_there_says_so(server, browser, tmp_path):  # noqa: F811
    for path in ("runs", "embeddings"):
        page = fresh(browser, f"{server}/{path}?run=deadbeef0000")
        note = page.get_by_test_id("stAlert").filter(has_text="There is no run").first
        note.wait_for(timeout=T)
        assert "deadbeef0000" in note.inner_text() and "not visible to you" in note.inner_text()
        assert page.get_by_label(NAME).count() == 1
        no_exception(page)
        page.context.close()


def test_a_deep_link_as_a_fresh_server_s_first_request(  # noqa: F811 (browser: a fixture)
        tmp_path_factory, browser, tmp_path, default_backbone):
    with serve(tmp_path_factory.mktemp("fresh-home")) as url:  # nothing has run a page yet
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(url + "/train?seed=7&steps=25&k=8", wait_until="commit")
        title = page.get_by_role("heading", name="Train a continuous prompt")
        loading, end = False, time.time() + T / 1000
        while not title.count():
            assert time.time() < end, page.inner_text("body")[:2000]
            loading = loading or page.get_by_text(re.compile(r"Loading default")).count() > 0
            no_exception(page)
            page.wait_for_timeout(100)
        assert loading, "no loading message while the first model loaded"
        page.get_by_label("Seed", exact=True).wait_for(timeout=T)
        assert page.get_by_label("Seed", exact=True).input_value() == "7"
        assert page.get_by_label("Steps", exact=True).input_value() == "25"
        assert page.get_by_label("k-shot (per class; 0 = all)").input_value() == "8"
        assert page.get_by_label(NAME).count() == 1  # app.py ran: the sidebar is there
        assert page.get_by_role("link", name="Template Studio").count() >= 1  # its navigation
        no_exception(page)
        shot(page, tmp_path, "links-fresh-server")
        ctx.close()
