"""What a student typed is kept even when a newer request interrupts the end of a script run.

Every read of ``st.session_state`` is a point where Streamlit raises a waiting request (a click,
Enter, a page switch) as a Rerun/StopException. ``remember()`` runs in app.py's ``finally``,
so before this was handled, a quick Enter-then-click cut it short: the template just typed was
never kept and a new tab opened on an older one (tests/test_browser_classroom.py saw it)."""
import types
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

import ui.classroom as classroom


class YieldingState(dict):
    """A session state that raises the waiting requests at its first reads, as Streamlit's
    SafeSessionState does (each raise consumes one request)."""

    def __init__(self, values, pending):
        super().__init__(values)
        self.pending = list(pending)

    def _yield(self):
        if self.pending:
            raise self.pending.pop(0)

    def get(self, key, default=None):
        self._yield()
        return super().get(key, default)

    def __getitem__(self, key):
        self._yield()
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self._yield()
        super().__setitem__(key, value)


class FakeService:
    """The door's classroom façade (``svc.room``) as remember() uses it."""

    def __init__(self):
        self.kept = []
        self.room = self

    def keep_working_state(self, who, values):
        self.kept.append((who, values))


TYPED = "{text} [P*2] so it was [MASK]"


def _state(pending):
    before = {"template": "[P*4] {sentence} It was [MASK]",
              "template_input": "[P*4] {sentence} It was [MASK]", "dataset": "sentiment",
              "model": "default", "upload": None, "hfdata": None, "label_tokens": "words",
              "name": "Ada", "pin_seen": None}
    return YieldingState({"sid": "who1", "template": TYPED, "template_input": TYPED,
                          "dataset": "sentiment", "model": "default", "label_tokens": "words",
                          "author": "Ada", "_kept": before}, pending)


@pytest.mark.parametrize("pending", [[], [RerunException(None)],
                                     [RerunException(None), RerunException(None)]])
def test_typed_template_is_kept_and_the_request_raised_again(monkeypatch, pending):
    ss, svc = _state(pending), FakeService()
    raised = pending[-1] if pending else None
    monkeypatch.setattr(classroom, "st", types.SimpleNamespace(session_state=ss))
    monkeypatch.setattr(classroom, "service", lambda: svc)
    if raised is None:
        classroom.remember()
    else:
        with pytest.raises(type(raised)) as info:
            classroom.remember()
        assert info.value is raised  # the user's click is not lost
    assert len(svc.kept) == 1
    who, values = svc.kept[0]
    assert who == "who1"
    assert values["template"] == TYPED and values["template_input"] == TYPED
    assert set(values) == {"template", "template_input"}  # only what changed
    assert ss["_kept"]["template_input"] == TYPED  # the next run compares with what was kept


def test_a_stopping_run_gives_up_at_once(monkeypatch):
    """A stopped run cannot read the state (every read raises again): remember() does not spin,
    it lets the stop through; app.py has already kept this run's input before the page ran."""
    stops = [StopException() for _ in range(50)]
    ss, svc = _state(stops), FakeService()
    monkeypatch.setattr(classroom, "st", types.SimpleNamespace(session_state=ss))
    monkeypatch.setattr(classroom, "service", lambda: svc)
    with pytest.raises(StopException):
        classroom.remember()
    assert len(ss.pending) == 49 and svc.kept == []


def test_app_keeps_the_input_before_the_page_runs():
    """The early call: a page that gets stuck must not take the user's input with it."""
    src = (Path(__file__).resolve().parent.parent / "app.py").read_text()
    body = src[src.index("try:"):src.index("finally:")]
    assert body.index("remember()") < body.index("nav.run()")
