"""The deadline tracker: pure functions from catalogues, tracking state and a report date to a status per obligation.

Nothing here reads a clock or the store: the caller passes `as_of` and the recorded state, so any
past or future day can be reported and every answer is reproducible.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .catalogue import all_obligations
from .config import GuidanceConfig
from .dates import add_period, non_working_reason
from .model import Catalogue, Obligation
from .rules import (
    AfterAnchor,
    DateStart,
    EventStart,
    NoDeadline,
    ObligationStart,
    OnDate,
    OrderStart,
    Recurring,
    format_rule,
)

Status = Literal["not_started", "in_progress", "submitted", "complete", "waived", "not_applicable"]
STATUSES: tuple[Status, ...] = ("not_started", "in_progress", "submitted", "complete", "waived", "not_applicable")
STATUS_LABELS: dict[str, str] = {
    "not_started": "Not started", "in_progress": "In progress", "submitted": "Submitted",
    "complete": "Complete", "waived": "Waived", "not_applicable": "Not applicable",
}
CLOSED: frozenset[str] = frozenset({"complete", "waived", "not_applicable"})

# What a report shows, in the order it shows it: the worst news first.
Standing = Literal["overdue", "due_soon", "open", "awaiting_anchor", "no_deadline", "submitted",
                   "complete", "waived", "not_applicable"]
STANDINGS: tuple[Standing, ...] = ("overdue", "due_soon", "open", "awaiting_anchor", "no_deadline", "submitted",
                                   "complete", "waived", "not_applicable")
STANDING_LABELS: dict[str, str] = {
    "overdue": "Overdue", "due_soon": "Due soon", "open": "Open", "awaiting_anchor": "Awaiting anchor",
    "no_deadline": "No deadline", "submitted": "Submitted", "complete": "Complete", "waived": "Waived",
    "not_applicable": "Not applicable",
}
Relevance = Literal["lead", "consulted", "awareness"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Frozen):
    """A file (with its SHA-256) or a URL that shows an obligation was met."""

    kind: Literal["file", "url"]
    ref: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = None
    added_at: datetime
    added_by: str
    note: str | None = None


class Note(_Frozen):
    """A dated remark on an obligation."""

    at: datetime
    by: str
    text: str


class TrackingState(_Frozen):
    """What has been recorded about one obligation."""

    obligation_id: str
    status: Status = "not_started"
    owner: str | None = None
    due_override: date | None = None
    override_reason: str | None = None
    completed_on: date | None = None
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[Note, ...] = ()
    updated_at: datetime | None = None
    updated_by: str | None = None


class TrackedObligation(_Frozen):
    """One obligation as a report sees it on `as_of`."""

    catalogue_id: str
    order: str
    order_title: str
    obligation: Obligation
    state: TrackingState
    relevance: Relevance
    rule: str
    basis: str
    computed_due: date | None
    due: date | None
    due_flag: str | None
    waiting_on: str | None
    standing: Standing
    days_left: int | None

    @property
    def id(self) -> str:
        """The obligation id."""
        return self.obligation.id


class Summary(_Frozen):
    """Counts and the one-line verdict for a set of tracked obligations."""

    as_of: date
    organization: str
    total: int
    relevant: int
    by_standing: dict[str, int]
    relevant_by_standing: dict[str, int]
    verdict: str
    next_due: str | None


def relevance(ob: Obligation, profile: GuidanceConfig) -> Relevance:
    """Whether the organisation leads, is consulted on, or only needs to know of an obligation."""
    names = {n.casefold() for n in (*profile.officials, profile.organization)}
    if ob.all_agencies or any(n.casefold() in names for n in ob.lead):
        return "lead"
    if any(n.casefold() in names for n in ob.consulted):
        return "consulted"
    return "awareness"


def _completion(states: Mapping[str, TrackingState], ob_id: str, as_of: date) -> date | None:
    st = states.get(ob_id)
    if st is None or st.status != "complete" or st.completed_on is None or st.completed_on > as_of:
        return None
    return st.completed_on


def _anchor_date(anchor: OrderStart | ObligationStart | EventStart | DateStart, cat: Catalogue,
                 states: Mapping[str, TrackingState], events: Mapping[str, date],
                 as_of: date) -> tuple[date | None, str]:
    if isinstance(anchor, OrderStart):
        assert cat.signed is not None  # the catalogue validator guarantees it
        return cat.signed, f"{cat.display_name} signed {cat.signed.isoformat()}"
    if isinstance(anchor, DateStart):
        return anchor.date, anchor.date.isoformat()
    if isinstance(anchor, ObligationStart):
        done = _completion(states, anchor.id, as_of)
        return done, (f"{anchor.id} completed {done.isoformat()}" if done else f"completion of {anchor.id}")
    happened = events.get(anchor.name)
    if happened is not None and happened > as_of:
        happened = None
    return happened, (f"event {anchor.name} on {happened.isoformat()}" if happened else f"event {anchor.name}")


def _recurring_due(rule: Recurring, start: date, last_done: date | None, as_of: date,
                   ended: date | None) -> date | None:
    # A completion counts for the cycle whose due date is nearest to it (ties go to the earlier
    # cycle), so finishing a little early or a little late both close the current cycle.
    k = 1
    if last_done is not None:
        while add_period(start, rule.period, k) <= last_done:
            k += 1
        # occurrence k is the first one after the completion; k - 1 the last on or before it
        after = add_period(start, rule.period, k)
        before = add_period(start, rule.period, k - 1) if k > 1 else None
        covered = k
        if before is not None and (last_done - before) <= (after - last_done):
            covered = k - 1
        k = covered + 1
    due = add_period(start, rule.period, k)
    if ended is not None and due > ended:
        return None
    return due


def compute_due(ob: Obligation, cat: Catalogue, states: Mapping[str, TrackingState],
                events: Mapping[str, date], as_of: date) -> tuple[date | None, str, str | None]:
    """The computed due date, a sentence saying how, and what it waits for (if its anchor is not recorded)."""
    rule = ob.deadline
    if isinstance(rule, NoDeadline):
        return None, "the text sets no deadline", None
    if isinstance(rule, OnDate):
        return rule.date, f"on {rule.date.isoformat()} as written", None
    if isinstance(rule, AfterAnchor):
        start, what = _anchor_date(rule.anchor, cat, states, events, as_of)
        if start is None:
            return None, f"{format_rule(rule)} (not yet recorded)", what
        return add_period(start, rule.period), f"{format_rule(rule)}: {what}", None
    start, what = _anchor_date(rule.start, cat, states, events, as_of)
    if start is None:
        return None, f"{format_rule(rule)} (not yet recorded)", what
    ended: date | None = None
    if isinstance(rule.until, DateStart):
        ended = rule.until.date
    elif isinstance(rule.until, EventStart):
        ended = events.get(rule.until.name)
        ended = ended if ended is not None and ended <= as_of else None
    st = states.get(ob.id)
    last = st.completed_on if st is not None and st.completed_on is not None and st.completed_on <= as_of else None
    due = _recurring_due(rule, start, last, as_of, ended)
    if due is None:
        return None, f"{format_rule(rule)}: recurrence ended", None
    return due, f"{format_rule(rule)}: next cycle after {what}", None


def _standing(ob: Obligation, st: TrackingState, due: date | None, waiting: str | None,
              as_of: date, due_soon_days: int) -> Standing:
    if st.status in ("waived", "not_applicable"):
        return st.status
    recurring = isinstance(ob.deadline, Recurring)
    if st.status == "complete" and st.completed_on is not None and st.completed_on > as_of and not recurring:
        # Reported for a day before it was completed: judge it as still open on that day.
        st = st.model_copy(update={"status": "in_progress"})
    if st.status == "complete" and not recurring:
        return "complete"
    if recurring and due is not None and st.completed_on is not None and st.completed_on <= as_of and due > as_of:
        # This cycle is done; the next one shows once it comes within the due-soon window.
        if (due - as_of).days > due_soon_days:
            return "complete"
    if st.status == "submitted" and not recurring:
        return "submitted"
    if recurring and due is None and st.status == "complete":
        return "complete"
    if due is None:
        return "awaiting_anchor" if waiting else "no_deadline"
    if due < as_of:
        return "overdue"
    if (due - as_of).days <= due_soon_days:
        return "due_soon"
    return "open"


def track(catalogues: Sequence[Catalogue], states: Mapping[str, TrackingState], events: Mapping[str, date],
          as_of: date, profile: GuidanceConfig) -> list[TrackedObligation]:
    """Every obligation of every catalogue as of `as_of`, sorted: relevant first, then worst standing, then due date."""
    rows: list[TrackedObligation] = []
    for cat, ob in all_obligations(catalogues).values():
        st = states.get(ob.id) or TrackingState(obligation_id=ob.id)
        computed, basis, waiting = compute_due(ob, cat, states, events, as_of)
        due = st.due_override or computed
        if st.due_override is not None:
            basis = f"override ({st.override_reason}); computed: {computed.isoformat() if computed else 'none'}"
            waiting = None
        standing = _standing(ob, st, due, waiting, as_of, profile.due_soon_days)
        rows.append(TrackedObligation(
            catalogue_id=cat.id, order=cat.display_name, order_title=cat.title, obligation=ob, state=st,
            relevance=relevance(ob, profile), rule=format_rule(ob.deadline), basis=basis,
            computed_due=computed, due=due, due_flag=non_working_reason(due) if due else None,
            waiting_on=waiting, standing=standing, days_left=(due - as_of).days if due else None,
        ))
    return sort_rows(rows)


def sort_rows(rows: Iterable[TrackedObligation]) -> list[TrackedObligation]:
    """Relevant (lead, consulted) before awareness; within that, worst standing first, then due date."""
    rel_rank = {"lead": 0, "consulted": 0, "awareness": 1}
    std_rank = {s: i for i, s in enumerate(STANDINGS)}
    return sorted(rows, key=lambda r: (rel_rank[r.relevance], std_rank[r.standing],
                                       r.due or date.max, r.catalogue_id, r.obligation.id))


def summarize(rows: Sequence[TrackedObligation], as_of: date, organization: str) -> Summary:
    """Counts by standing (all, and the organisation's own) and a one-line verdict."""
    everything = Counter(r.standing for r in rows)
    mine = [r for r in rows if r.relevance != "awareness"]
    own = Counter(r.standing for r in mine)
    upcoming = sorted((r for r in mine if r.due and r.standing in ("due_soon", "open")), key=lambda r: r.due or date.max)
    next_due = None
    if upcoming:
        n = upcoming[0]
        next_due = f"{n.order} Sec. {n.obligation.section} due {n.due.isoformat() if n.due else ''}"
    overdue = own.get("overdue", 0)
    soon = own.get("due_soon", 0)
    done = sum(own.get(s, 0) for s in ("complete", "waived", "not_applicable", "submitted"))
    if not mine:
        verdict = f"No tracked obligation names {organization}; {len(rows)} shown for awareness."
    elif overdue:
        verdict = (f"ACTION NEEDED: {overdue} of {len(mine)} {organization} obligations are overdue"
                   + (f", {soon} more due within days" if soon else "") + ".")
    elif soon:
        verdict = f"ON TRACK, DEADLINES NEAR: none overdue; {soon} of {len(mine)} {organization} obligations due soon."
    else:
        verdict = f"ON TRACK: none of {len(mine)} {organization} obligations overdue; {done} done or submitted."
    if next_due:
        verdict += f" Next: {next_due}."
    return Summary(as_of=as_of, organization=organization, total=len(rows), relevant=len(mine),
                   by_standing={s: everything.get(s, 0) for s in STANDINGS},
                   relevant_by_standing={s: own.get(s, 0) for s in STANDINGS},
                   verdict=verdict, next_due=next_due)
