"""The tracker: standings on any day, dependent and recurring deadlines, overrides, relevance, verdicts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from watchstander.guidance.config import GuidanceConfig
from watchstander.guidance.model import Catalogue
from watchstander.guidance.tracker import TrackingState, summarize, track

NOW = datetime(2026, 7, 1, 12, tzinfo=timezone.utc)
Make = Callable[..., Catalogue]


def _by_id(rows: list) -> dict:  # type: ignore[type-arg]
    return {r.id: r for r in rows}


def test_standings_move_with_the_report_date(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("a", "30 days after order"))
    assert track([cat], {}, {}, date(2026, 6, 10), profile)[0].standing == "open"
    assert track([cat], {}, {}, date(2026, 6, 20), profile)[0].standing == "due_soon"
    on_day = track([cat], {}, {}, date(2026, 7, 2), profile)[0]
    assert (on_day.standing, on_day.days_left) == ("due_soon", 0)
    late = track([cat], {}, {}, date(2026, 7, 3), profile)[0]
    assert (late.standing, late.days_left) == ("overdue", -1)


def test_completion_counts_from_its_date(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("a", "30 days after order"))
    done = {"a": TrackingState(obligation_id="a", status="complete", completed_on=date(2026, 7, 10))}
    assert track([cat], done, {}, date(2026, 7, 5), profile)[0].standing == "overdue"
    assert track([cat], done, {}, date(2026, 7, 10), profile)[0].standing == "complete"


def test_dependent_deadline_waits_for_its_anchor(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("a", "30 days after order"), ("b", "90 days after a"), ("c", "60 days after event released"))
    rows = _by_id(track([cat], {}, {}, date(2026, 7, 1), profile))
    assert rows["b"].due is None and rows["b"].standing == "awaiting_anchor" and rows["b"].waiting_on == "completion of a"
    assert rows["c"].waiting_on == "event released"
    states = {"a": TrackingState(obligation_id="a", status="complete", completed_on=date(2026, 6, 20))}
    rows = _by_id(track([cat], states, {"released": date(2026, 8, 1)}, date(2026, 8, 5), profile))
    assert rows["b"].due == date(2026, 9, 18)
    assert rows["c"].due == date(2026, 9, 30)
    # An event recorded for a later day does not count yet.
    rows = _by_id(track([cat], states, {"released": date(2026, 8, 1)}, date(2026, 7, 31), profile))
    assert rows["c"].due is None


def test_submitted_is_not_overdue_and_does_not_start_dependants(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("a", "30 days after order"), ("b", "10 days after a"))
    states = {"a": TrackingState(obligation_id="a", status="submitted")}
    rows = _by_id(track([cat], states, {}, date(2026, 8, 1), profile))
    assert rows["a"].standing == "submitted"
    assert rows["b"].standing == "awaiting_anchor"


def test_override_replaces_due_and_keeps_the_computed_one(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("a", "60 days after order"))
    states = {"a": TrackingState(obligation_id="a", due_override=date(2026, 7, 31), override_reason="Friday before")}
    row = track([cat], states, {}, date(2026, 7, 1), profile)[0]
    assert (row.due, row.computed_due) == (date(2026, 7, 31), date(2026, 8, 1))
    assert "Friday before" in row.basis and row.due_flag is None


def test_weekend_and_holiday_due_dates_are_flagged_not_moved(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("sat", "60 days after order"), ("hol", "on 2026-07-03"))
    rows = _by_id(track([cat], {}, {}, date(2026, 6, 2), profile))
    assert (rows["sat"].due, rows["sat"].due_flag) == (date(2026, 8, 1), "Saturday")
    assert (rows["hol"].due, rows["hol"].due_flag) == (date(2026, 7, 3), "Independence Day (observed)")


def test_recurring_cycles(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("inv", "every 1 year from order until 2029-01-01"))
    row = track([cat], {}, {}, date(2026, 7, 1), profile)[0]
    assert row.due == date(2027, 6, 2)
    early = {"inv": TrackingState(obligation_id="inv", status="complete", completed_on=date(2027, 5, 20))}
    row = track([cat], early, {}, date(2027, 6, 1), profile)[0]
    assert (row.due, row.standing) == (date(2028, 6, 2), "complete")
    late = {"inv": TrackingState(obligation_id="inv", status="complete", completed_on=date(2027, 7, 1))}
    assert track([cat], late, {}, date(2027, 7, 2), profile)[0].due == date(2028, 6, 2)
    # The next cycle comes back into view as it nears, and is overdue once missed.
    assert track([cat], late, {}, date(2028, 5, 25), profile)[0].standing == "due_soon"
    assert track([cat], late, {}, date(2028, 6, 3), profile)[0].standing == "overdue"
    ended = {"inv": TrackingState(obligation_id="inv", status="complete", completed_on=date(2028, 6, 1))}
    row = track([cat], ended, {}, date(2028, 6, 2), profile)[0]
    assert row.due is None and row.standing == "complete" and "ended" in row.basis


@given(st.dates(date(2026, 6, 3), date(2040, 1, 1)), st.dates(date(2026, 6, 3), date(2040, 1, 1)))
def test_recurring_due_is_after_the_last_completion(done: date, as_of: date) -> None:
    cat = Catalogue.model_validate({
        "id": "t", "number": "1", "title": "T order", "type": "directive", "signed": "2026-06-02", "citation": "Test order",
        "obligations": [{"id": "r", "section": "1", "title": "Recurring", "clause": "Each agency shall annually",
                         "all_agencies": True, "deliverable": "Report", "deadline": "annually"}]})
    if done > as_of:
        done, as_of = as_of, done
    states = {"r": TrackingState(obligation_id="r", status="complete", completed_on=done)}
    row = track([cat], states, {}, as_of, GuidanceConfig())[0]
    assert row.due is not None and row.due > done
    assert (row.due - done).days <= 366 * 2


def test_relevance_and_ordering(make_catalogue: Make) -> None:
    cat = make_catalogue(
        {"id": "mine", "deadline": "60 days after order"},
        {"id": "consulted", "lead": ["Secretary of the Treasury"], "consulted": ["Secretary of War"],
         "deadline": "60 days after order"},
        {"id": "other", "lead": ["Director of OPM"], "deadline": "30 days after order"},
        {"id": "everyone", "lead": [], "all_agencies": True, "deadline": "90 days after order"},
    )
    rows = track([cat], {}, {}, date(2026, 7, 10), GuidanceConfig())
    assert [(r.id, r.relevance) for r in rows] == [
        ("consulted", "consulted"), ("mine", "lead"), ("everyone", "lead"), ("other", "awareness")]
    other_org = GuidanceConfig(organization="Office of Personnel Management", officials=("Director of OPM",))
    assert track([cat], {}, {}, date(2026, 7, 10), other_org)[0].id == "other"


def test_verdicts(make_catalogue: Make, profile: GuidanceConfig) -> None:
    cat = make_catalogue(("a", "30 days after order"), ("b", "60 days after order"))
    rows = track([cat], {}, {}, date(2026, 7, 5), profile)
    s = summarize(rows, date(2026, 7, 5), profile.organization)
    assert s.verdict.startswith("ACTION NEEDED: 1 of 2 Department of War obligations are overdue")
    assert s.relevant_by_standing["overdue"] == 1 and s.total == 2
    done = {k: TrackingState(obligation_id=k, status="complete", completed_on=date(2026, 6, 30)) for k in "ab"}
    s = summarize(track([cat], done, {}, date(2026, 7, 5), profile), date(2026, 7, 5), profile.organization)
    assert s.verdict.startswith("ON TRACK: none of 2")
