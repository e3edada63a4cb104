"""Reminder selection (pure) and delivery barriers; real SMTP/webhook delivery is in the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchstander.guidance.config import GuidanceConfig, RemindersConfig
from watchstander.guidance.errors import NotifyError
from watchstander.guidance.model import Catalogue
from watchstander.guidance.reminders import Reminder, deliver, due_reminders, reminder_key
from watchstander.guidance.tracker import TrackingState, track

CFG = RemindersConfig()


@pytest.mark.parametrize(("days", "key"), [
    (20, None), (15, None), (14, "before-14d"), (10, "before-14d"), (7, "before-7d"), (2, "before-7d"),
    (1, "before-1d"), (0, "before-1d"), (-1, "overdue-2026-07-03"),
])
def test_keys(days: int, key: str | None) -> None:
    assert reminder_key(days, date(2026, 7, 3), CFG) == key


def test_no_daily_overdue_when_switched_off() -> None:
    assert reminder_key(-3, date(2026, 7, 3), RemindersConfig(daily_when_overdue=False)) is None


@given(st.lists(st.integers(0, 366), min_size=1, max_size=5), st.integers(-30, 400))
def test_key_is_the_tightest_threshold_reached(offsets: list[int], days: int) -> None:
    cfg = RemindersConfig(offsets_days=tuple(offsets))
    key = reminder_key(days, date(2026, 1, 1), cfg)
    if days < 0:
        assert key == "overdue-2026-01-01"
    elif days > max(offsets):
        assert key is None
    else:
        assert key == f"before-{min(o for o in offsets if o >= days)}d"


def test_due_reminders_skip_closed_awareness_and_far(make_catalogue: Callable[..., Catalogue]) -> None:
    cat = make_catalogue(("soon", "30 days after order"), ("far", "90 days after order"),
                         ("late", "20 days after order"), ("done", "30 days after order"),
                         {"id": "theirs", "lead": ["Director of OPM"], "deadline": "30 days after order"})
    states = {"done": TrackingState(obligation_id="done", status="complete", completed_on=date(2026, 6, 20))}
    as_of = date(2026, 6, 25)
    rows = track([cat], states, {}, as_of, GuidanceConfig())
    got = {(m.obligation_id, m.key) for m in due_reminders(rows, as_of, CFG)}
    assert got == {("late", "overdue-2026-06-25"), ("soon", "before-7d")}
    everyone = RemindersConfig(relevant_only=False)
    assert ("theirs", "before-7d") in {(m.obligation_id, m.key) for m in due_reminders(rows, as_of, everyone)}


class _Recorder:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.batches: list[list[str]] = []

    def send(self, reminders: Sequence[Reminder], as_of: date, organization: str) -> None:
        if self.fail:
            raise NotifyError(self.name, "down")
        self.batches.append([m.obligation_id for m in reminders])


def _reminder(ob: str) -> Reminder:
    return Reminder(obligation_id=ob, order="EO 1", section="2(a)", title="T", due=date(2026, 7, 2),
                    days_left=-1, key="overdue-2026-07-03", owner=None, lead=("Secretary of War",), standing="overdue")


def test_a_failing_channel_does_not_stop_the_others() -> None:
    sent: set[tuple[str, str]] = set()
    ok, broken = _Recorder("ok"), _Recorder("broken", fail=True)
    batch = [_reminder("a"), _reminder("b")]
    result = deliver(batch, date(2026, 7, 3), "DoW", [broken, ok], lambda m, c: (m.obligation_id, c) in sent,
                     lambda m, c: sent.add((m.obligation_id, c)))
    assert result.failed == {"broken": "broken: down"} and result.sent == {"ok": 2}
    assert ok.batches == [["a", "b"]]
    # A second run sends nothing again on the channel that worked.
    result = deliver(batch, date(2026, 7, 3), "DoW", [ok], lambda m, c: (m.obligation_id, c) in sent,
                     lambda m, c: sent.add((m.obligation_id, c)))
    assert result.sent == {"ok": 0} and len(ok.batches) == 1


def test_headline_wording() -> None:
    assert "1 day OVERDUE" in _reminder("a").headline
    soon = Reminder(obligation_id="a", order="EO 1", section="2", title="T", due=date(2026, 7, 2) + timedelta(days=1),
                    days_left=0, key="before-1d", owner=None, lead=(), standing="due_soon")
    assert "due TODAY" in soon.headline
