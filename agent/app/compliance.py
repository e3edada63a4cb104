"""Compliance use cases: the guidance catalogues with the site's own items, tracking, reports and reminders.

The command line, the daemon's reminder job and the coming console all go through these; guidance
errors stay typed here and are translated by the entry points.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from watchstander.guidance.catalogue import check_catalogue_set, load_catalogues
from watchstander.guidance.errors import CatalogueError, GuidanceError
from watchstander.guidance.evidence import EvidenceRef
from watchstander.guidance.model import Catalogue, Obligation
from watchstander.guidance.reminders import Reminder, RunResult, deliver, due_reminders, notifiers_for
from watchstander.guidance.report import Report, build_report, row_of
from watchstander.guidance.rules import IDENT, parse_rule
from watchstander.guidance.tracker import TrackedObligation, TrackingState, summarize, track
from watchstander.guidance.writers import WRITERS

from ..errors import ConfigError, InputError, NotFoundError
from ..store.guidance import SITE_CATALOGUE, GuidanceStore
from .evidence import operational_evidence
from .wiring import App

log = logging.getLogger(__name__)

EXPORT_FORMATS = tuple(WRITERS)


# -- loading --------------------------------------------------------------------------------------

def guidance_store(app: App) -> GuidanceStore:
    """The guidance tables of the context's store."""
    return GuidanceStore(app.store, app.audit, app.clock)


def site_catalogue(organization: str, obligations: Sequence[Obligation] = ()) -> Catalogue:
    """The catalogue that holds a site's own items not attached to an order."""
    return Catalogue(id=SITE_CATALOGUE, number="Site", title=f"{organization} implementing guidance",
                     type="agency-guidance", signed=None, citation="Added with `watchstander guidance add`",
                     obligations=tuple(obligations))


def load_all(app: App, gstore: GuidanceStore | None = None) -> list[Catalogue]:
    """Shipped and site catalogues, with the obligations added through `guidance add` merged in."""
    cfg = app.config.guidance
    catalogues = load_catalogues(cfg.catalogue_dirs)
    gstore = gstore or guidance_store(app)
    extra: dict[str, list[Obligation]] = {}
    for cat_id, ob in gstore.site_obligations():
        extra.setdefault(cat_id, []).append(ob)
    merged = []
    for cat in catalogues:
        if cat.id in extra:
            cat = cat.model_copy(update={"obligations": cat.obligations + tuple(extra.pop(cat.id))})
        merged.append(cat)
    site = extra.pop(SITE_CATALOGUE, [])
    for cat_id, obs in extra.items():
        log.warning("site obligations %s refer to missing catalogue %s; shown under site",
                    ", ".join(o.id for o in obs), cat_id)
        site.extend(obs)
    if site:
        merged.append(site_catalogue(cfg.organization, site))
    check_catalogue_set(merged)
    return merged


def tracked(app: App, as_of: date, orders: Sequence[str] | None = None,
            gstore: GuidanceStore | None = None,
            as_recorded: bool = False) -> tuple[list[Catalogue], list[TrackedObligation]]:
    """Catalogues in scope and every obligation's standing on `as_of` (as known now, or as recorded then)."""
    gstore = gstore or guidance_store(app)
    catalogues = load_all(app, gstore)
    rows = track(catalogues, gstore.states(as_of, as_recorded=as_recorded), gstore.events(as_of), as_of,
                 app.config.guidance)
    if orders:
        known = {c.id for c in catalogues}
        missing = [o for o in orders if o not in known]
        if missing:
            raise NotFoundError(f"no catalogue {', '.join(missing)}; known: {', '.join(sorted(known))}")
        catalogues = [c for c in catalogues if c.id in orders]
        rows = [r for r in rows if r.catalogue_id in orders]
    return catalogues, rows


def find_obligation(rows: Sequence[TrackedObligation], ob_id: str) -> TrackedObligation:
    for r in rows:
        if r.id == ob_id:
            return r
    raise NotFoundError(f"no obligation {ob_id!r} (see `watchstander guidance status`)")


# -- reports --------------------------------------------------------------------------------------

def make_report(app: App, as_of: date, orders: Sequence[str] | None = None, title: str | None = None,
                as_recorded: bool = False, *, actor: str) -> Report:
    """Build the report model for `as_of` from the store."""
    catalogues, rows = tracked(app, as_of, orders, as_recorded=as_recorded)
    cfg = app.config.guidance
    if title is None:
        names = ", ".join(c.display_name for c in catalogues) or "no orders"
        title = f"Guidance compliance report: {names}"
    return build_report(title=title, organization=cfg.organization, as_of=as_of, generated_at=app.clock(),
                        generated_by=f"watchstander ({actor})", catalogues=catalogues, rows=rows,
                        summary=summarize(rows, as_of, cfg.organization),
                        operational=operational_evidence(app, as_of))


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path = path.expanduser()
    if not path.parent.exists():
        raise InputError(f"output folder does not exist: {path.parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_export(report: Report, fmt: str, out: Path) -> None:
    """Write one export format to `out` (atomically: a reader never sees half a file)."""
    writer = WRITERS.get(fmt)
    if writer is None:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    _atomic_write(out, lambda p: writer(report, p))


def write_file(out: Path, content: bytes) -> None:
    """Write rendered report bytes to `out` atomically (the export a daemon rendered for a client)."""
    def write(path: Path) -> None:
        path.write_bytes(content)

    _atomic_write(out, write)


def write_demo_report(app: App, out_dir: Path, as_of: date, *, actor: str) -> list[Path]:
    """Write the EO 14409 report as of `as_of` into `out_dir` (HTML, PDF and JSON); returns the files."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out_dir}: {exc.strerror}") from exc
    try:
        report = make_report(app, as_of, ["eo14409"], title="EO 14409 compliance report", actor=actor)
        stem = f"eo14409-report-{as_of.isoformat()}"
        written = []
        for fmt, suffix in (("html", "html"), ("pdf", "pdf"), ("json", "json")):
            path = out_dir / f"{stem}.{suffix}"
            write_export(report, fmt, path)
            written.append(path)
    except CatalogueError as exc:
        raise ConfigError(str(exc).splitlines()[0], exc.problems) from exc
    except GuidanceError as exc:
        raise InputError(str(exc)) from exc
    return written


def run_reminders(app: App, as_of: date, *, dry_run: bool = False,
                  notifiers: Sequence[Any] | None = None) -> tuple[list[Reminder], RunResult]:
    """Compute and deliver the reminders due on `as_of`; each channel gets each reminder once."""
    cfg = app.config.guidance
    gstore = guidance_store(app)
    _, rows = tracked(app, as_of, gstore=gstore)
    reminders = due_reminders(rows, as_of, cfg.reminders)
    if dry_run:
        return reminders, RunResult(considered=len(reminders))
    sent = gstore.reminders_sent()

    def already(m: Reminder, channel: str) -> bool:
        return (m.obligation_id, m.due.isoformat(), m.key, channel) in sent

    def mark(m: Reminder, channel: str) -> None:
        gstore.mark_reminder_sent(m.obligation_id, m.due, m.key, channel, "watchstander:reminders")

    chans = list(notifiers) if notifiers is not None else notifiers_for(cfg.reminders)
    return reminders, deliver(reminders, as_of, cfg.organization, chans, already, mark)


# -- the use cases both doors serve (the CLI in-process, the daemon's control methods) -----------

@contextmanager
def guidance_errors() -> Iterator[None]:
    """Translate guidance's own errors into the agent's (and so into exit statuses) at the boundary."""
    try:
        yield
    except CatalogueError as exc:
        raise ConfigError(str(exc).splitlines()[0], exc.problems) from exc
    except GuidanceError as exc:
        raise InputError(str(exc)) from exc


def status_data(app: App, as_of: date, orders: Sequence[str] | None = None, *,
                as_recorded: bool = False) -> dict[str, Any]:
    """Every obligation's standing on `as_of` with the summary, as plain data."""
    with guidance_errors():
        _, rows = tracked(app, as_of, orders, as_recorded=as_recorded)
        summary = summarize(rows, as_of, app.config.guidance.organization)
        return {"as_of": as_of.isoformat(), "summary": summary.model_dump(mode="json"),
                "obligations": [row_of(r).model_dump(mode="json") for r in rows]}


def obligation_data(app: App, ob_id: str, as_of: date) -> dict[str, Any]:
    """One obligation in full with its audit history, as plain data."""
    with guidance_errors():
        gstore = guidance_store(app)
        _, rows = tracked(app, as_of, gstore=gstore)
        row = row_of(find_obligation(rows, ob_id))
        return {"obligation": row.model_dump(mode="json"), "history": gstore.history(ob_id)}


def export_bytes(app: App, fmt: str, as_of: date, orders: Sequence[str] | None = None, title: str | None = None,
                 as_recorded: bool = False, *, actor: str) -> tuple[bytes, int]:
    """One report rendered in `fmt`: its bytes and how many obligations it covers."""
    with guidance_errors():
        report = make_report(app, as_of, orders, title, as_recorded, actor=actor)
        with tempfile.TemporaryDirectory(prefix="watchstander-export-") as tmp:
            out = Path(tmp) / f"report.{fmt}"
            write_export(report, fmt, out)
            return out.read_bytes(), len(report.rows)


def update_obligation(app: App, ob_id: str, actor: str, *, status: str | None = None, owner: str | None = None,
                      note: str | None = None, evidence: Sequence[EvidenceRef] = (), due: date | None = None,
                      reason: str | None = None, clear_due: bool = False,
                      completed_on: date | None = None) -> TrackingState:
    """Apply one audited update to an obligation that the catalogues know."""
    with guidance_errors():
        gstore = guidance_store(app)
        if not any(ob.id == ob_id for c in load_all(app, gstore) for ob in c.obligations):
            raise NotFoundError(f"no obligation {ob_id!r} (see `watchstander guidance status`)")
        return gstore.update(ob_id, actor, status=status, owner=owner, note=note,  # type: ignore[arg-type]
                             evidence=evidence, due_override=due, override_reason=reason,
                             clear_override=clear_due, completed_on=completed_on)


def record_event(app: App, name: str, day: date, actor: str, note: str | None = None) -> bool:
    """Record the day an anchor event happened; whether any obligation counts from it."""
    if not re.fullmatch(IDENT, name):
        raise InputError(f"event name {name!r}: use lower-case letters, digits, '.', '_', '-'")
    with guidance_errors():
        gstore = guidance_store(app)
        referenced: set[str | None] = set()
        for c in load_all(app, gstore):
            for ob in c.obligations:
                for part in ("anchor", "start", "until"):
                    referenced.add(getattr(getattr(ob.deadline, part, None), "name", None))
        gstore.record_event(name, day, actor, note)
        return name in referenced


def add_obligation(app: App, order: str, fields: dict[str, Any], actor: str) -> Obligation:
    """Add a site follow-on obligation after validating it against its catalogue and the whole set."""
    from pydantic import ValidationError

    with guidance_errors():
        gstore = guidance_store(app)
        catalogues = load_all(app, gstore)
        deadline = str(fields.pop("deadline", "none"))
        try:
            ob = Obligation(**{**fields, "deadline": parse_rule(deadline)})
        except ValidationError as exc:
            problems = [(".".join(str(p) for p in e["loc"]) or "obligation", e["msg"]) for e in exc.errors()]
            raise InputError("invalid obligation: " + "; ".join(f"{k}: {m}" for k, m in problems)) from exc
        target = next((c for c in catalogues if c.id == order), None)
        if target is None and order != SITE_CATALOGUE:
            raise NotFoundError(f"no catalogue {order!r}; known: {', '.join(sorted(c.id for c in catalogues))}")
        try:
            if target is None:
                target = site_catalogue(app.config.guidance.organization)
            # Validate as part of its catalogue and the whole set before storing anything.
            candidate = Catalogue.model_validate({**target.model_dump(), "obligations": [
                *[o.model_dump() for o in target.obligations], ob.model_dump()]})
        except ValidationError as exc:
            raise InputError(f"obligation does not fit catalogue {order}: {exc.errors()[0]['msg']}") from exc
        check_catalogue_set([c for c in catalogues if c.id != candidate.id] + [candidate])
        gstore.add_site_obligation(order, ob, actor)
        return ob
