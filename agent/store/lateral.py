"""What the lateral-movement detector has learned (component "lateral"): which internal hosts use
which admin services, and how much traffic time learning has observed, so that a restart neither
forgets the baseline nor starts the learning window again.

`LateralStore` has the shape of the detector's memory protocol (`load`, `save_progress`,
`save_pair`) without importing detection, which sits on a higher floor.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError

from .engine import Component, Store

_meta = MetaData()

lateral_pairs = Table(
    "lateral_pairs", _meta,
    Column("src", String(64), primary_key=True),
    Column("service", String(16), primary_key=True),
    Column("first_seen", Float, nullable=False),
)

lateral_learning = Table(
    "lateral_learning", _meta,
    Column("id", Integer, primary_key=True),  # always 1: one learning window per store
    Column("observed_s", Float, nullable=False),
)


def _v1(conn: Connection) -> None:
    _meta.create_all(conn)


SCHEMA = Component("lateral", (_v1,))


class LateralStore:
    """Reads and saves learned (host, service) pairs and the start of learning."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self) -> tuple[float, list[tuple[str, str, float]]]:
        """(observed learning seconds, every learned (src, service, first_seen))."""
        with self.store.begin() as conn:
            observed = conn.execute(select(lateral_learning.c.observed_s).where(lateral_learning.c.id == 1)).scalar()
            rows = conn.execute(select(lateral_pairs.c.src, lateral_pairs.c.service, lateral_pairs.c.first_seen))
            pairs = [(r.src, r.service, float(r.first_seen)) for r in rows]
        return (0.0 if observed is None else float(observed)), pairs

    def save_progress(self, observed_s: float) -> None:
        """Record the learning time observed so far."""
        with self.store.begin() as conn:
            done = conn.execute(lateral_learning.update().where(lateral_learning.c.id == 1)
                                .values(observed_s=observed_s))
            if done.rowcount == 0:
                conn.execute(lateral_learning.insert().values(id=1, observed_s=observed_s))

    def save_pair(self, src: str, service: str, first_seen: float) -> None:
        """Remember that `src` used `service` (a pair already stored keeps its first time)."""
        try:
            with self.store.begin() as conn:
                conn.execute(lateral_pairs.insert().values(src=src[:64], service=service[:16], first_seen=first_seen))
        except IntegrityError:
            pass
