"""Every annotated sample in tests/data/samples is read and every annotation checked (fail2ban's model)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from watchstander.connectors.events import Event
from watchstander.connectors.formats import FORMATS
from watchstander.connectors.skips import SkipCounter
from watchstander.connectors.sniff import sniff

from .conftest import fixed_clock, new_skips

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
SIDECARS = sorted(SAMPLES.glob("*.expected.json"))


def _read(reader: str, path: Path, spec: dict[str, Any], skips: SkipCounter) -> Iterable[Event]:
    if reader not in FORMATS:
        raise AssertionError(f"unknown reader {reader!r} in {path.name}.expected.json")
    now = datetime.fromisoformat(spec.get("now", "2026-01-01T00:00:00Z").replace("Z", "+00:00"))
    return FORMATS[reader].read_file(path, fixed_clock(now), skips, source="s")


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_samples_exist() -> None:
    assert {json.loads(p.read_text())["reader"] for p in SIDECARS} >= {"syslog", "eve", "dnsnames"}


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_sample(sidecar: Path) -> None:
    spec = json.loads(sidecar.read_text(encoding="utf-8"))
    sample = sidecar.with_name(sidecar.name.removesuffix(".expected.json"))
    lines = sample.read_bytes().split(b"\n")
    annotated: dict[int, dict[str, Any]] = {int(k): v for k, v in spec["lines"].items()}
    # Every record in the sample is annotated, and every annotation points at the line it describes.
    records = {n for n, raw in enumerate(lines, 1) if raw.strip()}
    assert set(annotated) == records, f"{sample.name}: unannotated {sorted(records - set(annotated))}, " \
                                      f"stale {sorted(set(annotated) - records)}"
    for n, ann in annotated.items():
        text = lines[n - 1][:40].decode("utf-8", "backslashreplace").rstrip("\r\n")
        assert text == ann["starts"], f"{sample.name}:{n}: annotation is for {ann['starts']!r}"

    if spec.get("sniffs_as") is not None:
        assert sniff(sample) == spec["sniffs_as"]
    skips = new_skips()
    events = {int(ev.ref.rsplit(":", 1)[1]): ev for ev in _read(spec["reader"], sample, spec, skips) if ev.ref}

    expected_skips: Counter[str] = Counter(a["skip"] for a in annotated.values() if "skip" in a)
    expected_ignored: Counter[str] = Counter(a["ignored"] for a in annotated.values() if "ignored" in a)
    assert skips.counts == expected_skips
    assert skips.ignored == expected_ignored
    assert sorted(events) == sorted(n for n, a in annotated.items() if "event" in a)

    for n, ann in annotated.items():
        if "event" not in ann:
            continue
        ev, where = events[n], f"{sample.name}:{n} ({ann['note']})"
        for key, want in ann["event"].items():
            got = getattr(ev, key)
            if key == "time":
                assert got == pytest.approx(_iso(want), abs=1e-6), where
            elif key == "attrs" and want is not None:
                assert got is not None, where
                assert {k: got.get(k) for k in want} == want, where
            else:
                assert got == want, f"{where}: {key} is {got!r}, annotated {want!r}"
