"""The console's incident listing: filters read from a request, checked, and run as one bounded search.

    query_from_params({"min_severity": "high", "status": ["open", "acknowledged"], "detector": "portscan",
                       "asset": "10.20.", "search": "scan", "seen_after": "2026-11-27T00:00:00Z",
                       "limit": 50, "offset": 0})  -> IncidentQuery
    search_incidents(store, clock, query)          -> IncidentPage  (rows newest activity first + total)

Every parameter is optional. Times are ISO 8601 (a zone is required) or epoch seconds. Substring
filters are case-insensitive (ASCII case folding for the title) and treat % and _ literally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..clock import Clock
from ..errors import InputError
from ..models import SEVERITIES
from ..store.engine import Store
from ..store.incidents import STATUSES, IncidentPage, IncidentQuery, IncidentStore

MAX_PAGE = 1000
MAX_OFFSET = 10_000_000
MAX_FILTER = 300
KNOWN = frozenset({"min_severity", "severity", "status", "detector", "asset", "search", "assignee", "sensor",
                   "seen_after", "seen_before", "limit", "offset"})


def _choices(params: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    value = params.get(key)
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v in allowed for v in items):
        raise InputError(f"{key}: one or more of {', '.join(allowed)}")
    return frozenset(items)


def _filter(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_FILTER:
        raise InputError(f"{key}: expected a string of at most {MAX_FILTER} characters")
    return value


def _time(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise InputError(f"{key}: expected an ISO 8601 time with a zone (e.g. 2026-11-27T12:00:00Z) or epoch seconds")


def _int(params: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{key}: expected an integer from {low} to {high}")
    return value


def query_from_params(params: Mapping[str, Any]) -> IncidentQuery:
    """An IncidentQuery from request parameters; InputError (exit 4) names the first bad one."""
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        raise InputError(f"unknown filter(s): {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
    min_sev = params.get("min_severity")
    if min_sev is not None and min_sev not in SEVERITIES:
        raise InputError(f"min_severity: one of {', '.join(SEVERITIES)}")
    return IncidentQuery(
        min_severity=min_sev, severities=_choices(params, "severity", SEVERITIES),
        statuses=_choices(params, "status", STATUSES), detector=_filter(params, "detector"),
        asset=_filter(params, "asset"), text=_filter(params, "search"), assignee=_filter(params, "assignee"),
        sensor=_filter(params, "sensor"),
        seen_after=_time(params, "seen_after"), seen_before=_time(params, "seen_before"),
        limit=_int(params, "limit", 50, 1, MAX_PAGE), offset=_int(params, "offset", 0, 0, MAX_OFFSET))


def search_incidents(store: Store, clock: Clock, query: IncidentQuery) -> IncidentPage:
    """One page of incidents matching `query`, newest activity first, with the total that match."""
    return IncidentStore(store, clock).search(query)
