"""`watchstander guidance extract` wiring (the extractor itself is tested with its own module)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

SHARED_ORDERS = Path(__file__).resolve().parents[3] / ".." / "shared" / "orders"
SAMPLE = """TITLE: Test order
DATE: 2026-06-02
==============================================================================

Sec. 2. Things.  (a)  Within 30 days of the date of this order, the Secretary of War shall report.
"""


@pytest.fixture
def extractor_available() -> None:
    try:
        import watchstander.guidance.extractor  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"extractor not available yet: {exc}")


@pytest.mark.usefixtures("extractor_available")
def test_extract_json_and_yaml(cli: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    order = tmp_path / "order.txt"
    order.write_text(SAMPLE, encoding="utf-8")
    assert cli("guidance", "extract", str(order), "--signed", "2026-06-02", "--format", "json") == 0
    items = json.loads(capsys.readouterr().out)
    assert any(i["section"] == "2(a)" and i["due"] == "2026-07-02" for i in items)
    assert cli("guidance", "extract", str(order), "--signed", "2026-06-02") == 0
    draft = yaml.safe_load(capsys.readouterr().out)
    assert draft["order"]["signed"] == "2026-06-02"
    assert cli("guidance", "extract", str(tmp_path / "missing.txt"), "--signed", "2026-06-02") == 4


@pytest.mark.shared
@pytest.mark.usefixtures("extractor_available")
def test_extract_agrees_with_the_eo14409_catalogue(cli: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(SHARED_ORDERS.glob("EO14409_*.txt")) if SHARED_ORDERS.is_dir() else []
    if not files:
        pytest.skip(f"EO 14409 text not found under {SHARED_ORDERS.resolve()} (shared/ sits beside the repo)")
    assert cli("guidance", "extract", str(files[0]), "--signed", "2026-06-02", "--format", "json") == 0
    found = {(i["section"], i["due"]) for i in json.loads(capsys.readouterr().out)}
    from datetime import date

    from watchstander.guidance.catalogue import shipped_catalogues
    from watchstander.guidance.config import GuidanceConfig
    from watchstander.guidance.tracker import track

    eo = [c for c in shipped_catalogues() if c.id == "eo14409"]
    expected = {(r.obligation.section, r.due.isoformat()) for r in track(eo, {}, {}, date(2026, 6, 2), GuidanceConfig())
                if r.due is not None}
    assert expected <= found
