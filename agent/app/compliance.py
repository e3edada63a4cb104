"""Compliance use cases: the guidance catalogues with the site's own items, tracking, reports and reminders.

The command line, the daemon's reminder job and the coming console all go through these; guidance
errors stay typed here and are translated by the entry points.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from watchstander.guidance.catalogue import check_catalogue_set, load_catalogues
from watchstander.guidance.errors import CatalogueError, GuidanceError
from watchstander.guidance.model import Catalogue, Obligation
from watchstander.guidance.reminders import Reminder, RunResult, deliver, due_reminders, notifiers_for
from watchstander.guidance.report import Report, build_report
from watchstander.guidance.tracker import TrackedObligation, summarize, track
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
