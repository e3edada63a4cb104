"""Every shipped catalogue loads and validates, and its dates match the texts."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from watchstander.guidance.catalogue import check_catalogue_set, load_catalogues, parse_catalogue
from watchstander.guidance.config import GuidanceConfig
from watchstander.guidance.errors import CatalogueError
from watchstander.guidance.model import Catalogue
from watchstander.guidance.rules import AfterAnchor, NoDeadline, OrderStart
from watchstander.guidance.tracker import track

REPO = Path(__file__).resolve().parents[3]
SHARED_ORDERS = REPO / ".." / "shared" / "orders"

ORDER_FILES = {"eo14409": "EO14409_", "nspm11": "NSPM-11_", "nspm12": "NSPM-12_"}


def _due_dates(cat: Catalogue) -> dict[str, date | None]:
    rows = track([cat], {}, {}, cat.signed or date(2026, 1, 1), GuidanceConfig())
    return {r.id: r.due for r in rows}


def test_shipped_set(shipped: list[Catalogue]) -> None:
    assert [c.id for c in shipped] == ["eo14409", "nspm11", "nspm12"]
    assert {c.id: c.signed for c in shipped} == {
        "eo14409": date(2026, 6, 2), "nspm11": date(2026, 6, 5), "nspm12": date(2026, 6, 12)}
    for cat in shipped:
        assert cat.source_url and cat.source_url.startswith("https://www.whitehouse.gov/presidential-actions/2026/06/")
        assert cat.reviewed, f"{cat.id} must say how it was checked"


def test_eo14409_dates(shipped: list[Catalogue]) -> None:
    eo = next(c for c in shipped if c.id == "eo14409")
    due = _due_dates(eo)
    assert sorted(k for k, v in due.items() if v == date(2026, 7, 2)) == [
        "eo14409-2a", "eo14409-2b", "eo14409-2c", "eo14409-2d", "eo14409-2e"]
    assert sorted(k for k, v in due.items() if v == date(2026, 8, 1)) == ["eo14409-2f", "eo14409-3"]
    sec4 = next(o for o in eo.obligations if o.section == "4")
    assert isinstance(sec4.deadline, NoDeadline) and due[sec4.id] is None
    assert len(eo.obligations) == 8


def test_nspm_dates(shipped: list[Catalogue]) -> None:
    n11 = _due_dates(next(c for c in shipped if c.id == "nspm11"))
    n12 = _due_dates(next(c for c in shipped if c.id == "nspm12"))
    assert {k for k, v in n11.items() if v == date(2026, 9, 3)} == {"nspm11-3a", "nspm11-3c", "nspm11-3d", "nspm11-4b"}
    assert {k for k, v in n11.items() if v == date(2026, 10, 3)} == {
        "nspm11-4a", "nspm11-4c", "nspm11-4f", "nspm11-5b", "nspm11-5c", "nspm11-5e", "nspm11-5f"}
    assert n12["nspm12-6a"] == date(2026, 7, 12)
    assert {k for k, v in n12.items() if v == date(2026, 8, 11)} == {
        "nspm12-6b-i", "nspm12-6c-i", "nspm12-6d-ii", "nspm12-6e"}
    assert {k for k, v in n12.items() if v == date(2026, 9, 10)} == {
        "nspm12-6b-ii", "nspm12-6b-iii", "nspm12-7a-ii", "nspm12-7a-iii", "nspm12-7b"}
    assert n12["nspm12-7a-i"] == date(2026, 10, 10)
    assert n12["nspm12-6d"] == date(2027, 6, 12)
    # Dependent deadlines have no date until their anchor is recorded.
    for dep in ("nspm12-6b-iii-complete", "nspm12-6c-ii", "nspm12-6c-iii"):
        assert n12[dep] is None


def test_every_order_anchored_label_is_in_a_catalogue(shipped: list[Catalogue]) -> None:
    """Cross-check against the hand labels kept for the extractor (written independently)."""
    labels_dir = REPO / "tests" / "data" / "order_labels"
    if not labels_dir.is_dir():
        pytest.skip(f"no hand labels at {labels_dir}")
    by_prefix = {v: k for k, v in ORDER_FILES.items()}
    checked = 0
    for path in labels_dir.glob("*.yaml"):
        cat_id = next((cid for prefix, cid in by_prefix.items() if path.name.startswith(prefix)), None)
        if cat_id is None:
            continue
        cat = next(c for c in shipped if c.id == cat_id)
        due = _due_dates(cat)
        for label in yaml.safe_load(path.read_text(encoding="utf-8"))["labels"]:
            sections = [o for o in cat.obligations if o.section == str(label["section"])]
            assert sections, f"{cat_id}: no obligation for labelled section {label['section']}"
            if label["anchor"] == "order":
                assert any(due[o.id] == date.fromisoformat(str(label["due"])) for o in sections), (cat_id, label)
            checked += 1
    assert checked >= 35


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'")).strip()


@pytest.mark.shared
@pytest.mark.parametrize("cat_id", sorted(ORDER_FILES))
def test_clause_openings_are_verbatim(shipped: list[Catalogue], cat_id: str) -> None:
    if not SHARED_ORDERS.is_dir():
        pytest.skip(f"order texts not found at {SHARED_ORDERS.resolve()} (shared/ sits beside the repo)")
    files = sorted(SHARED_ORDERS.glob(ORDER_FILES[cat_id] + "*.txt"))
    if not files:
        pytest.skip(f"no {ORDER_FILES[cat_id]}*.txt in {SHARED_ORDERS.resolve()}")
    text = _normalise(files[0].read_text(encoding="utf-8"))
    header = files[0].read_text(encoding="utf-8").split("\n=", 1)[0]
    cat = next(c for c in shipped if c.id == cat_id)
    assert f"DATE: {cat.signed.isoformat()}" in header if cat.signed else False
    assert f"SOURCE_URL: {cat.source_url}" in header
    for ob in cat.obligations:
        assert _normalise(ob.clause) in text, f"{ob.id}: clause opening is not verbatim in {files[0].name}"
        rule = ob.deadline
        if isinstance(rule, AfterAnchor) and isinstance(rule.anchor, OrderStart):
            start = text.index(_normalise(ob.clause))
            window = text[start:start + len(_normalise(ob.clause)) + 200]
            assert re.search(rf"[Ww]ithin {rule.period.value} days of the date of th(is|e) (order|memorandum)",
                             window), f"{ob.id}: the clause does not state the period the catalogue gives"


def _catalogue_yaml(**over: object) -> str:
    data: dict[str, object] = {
        "id": "site-x", "number": "X-1", "title": "Site order", "type": "agency-guidance", "signed": "2026-06-10",
        "citation": "Memo X-1", "obligations": [{"id": "x-1", "section": "1(a)", "title": "Do a thing",
                                                  "clause": "The CIO shall do a thing", "lead": ["DOW CIO"],
                                                  "deliverable": "A thing", "deadline": "10 days after order"}],
    }
    data.update(over)
    return yaml.safe_dump(data)


def test_site_catalogue_parses() -> None:
    cat = parse_catalogue(_catalogue_yaml())
    assert cat.obligations[0].deadline == AfterAnchor.model_validate({"period": {"value": 10, "unit": "days"}})


@pytest.mark.parametrize(("over", "fragment"), [
    ({"type": "decree"}, "type"),
    ({"obligations": [{"id": "x", "section": "1a)", "title": "Bad", "clause": "0123456789 clause", "lead": ["A"],
                       "deliverable": "abc"}]}, "section"),
    ({"obligations": [{"id": "x", "section": "1", "title": "Bad", "clause": "0123456789 clause", "lead": ["A"],
                       "deliverable": "abc", "deadline": "30 fortnights after order"}]}, "unknown unit"),
    ({"signed": None}, "no signing date"),
    ({"obligations": [{"id": "x", "section": "1", "title": "Bad", "clause": "0123456789 clause",
                       "deliverable": "abc"}]}, "lead"),
    ({"extra": 1}, "extra"),
])
def test_invalid_catalogues_name_the_problem(over: dict[str, object], fragment: str) -> None:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(_catalogue_yaml(**over), "site.yaml")
    assert any(fragment.lower() in (w + m).lower() for w, m in info.value.problems), info.value.problems


def test_set_checks_anchors_and_cycles(make_catalogue: object) -> None:
    cat = make_catalogue(("a", "10 days after b"), ("b", "10 days after a"))  # type: ignore[operator]
    with pytest.raises(CatalogueError, match="inconsistent") as info:
        check_catalogue_set([cat])
    assert any("cycle" in m for _, m in info.value.problems)
    lone = make_catalogue(("a", "10 days after nowhere"))  # type: ignore[operator]
    with pytest.raises(CatalogueError):
        check_catalogue_set([lone])


def test_extra_dirs_are_loaded_and_checked(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(_catalogue_yaml(), encoding="utf-8")
    assert [c.id for c in load_catalogues([tmp_path])][-1] == "site-x"
    (tmp_path / "y.yaml").write_text(_catalogue_yaml(), encoding="utf-8")
    with pytest.raises(CatalogueError, match="inconsistent"):
        load_catalogues([tmp_path])
    with pytest.raises(CatalogueError, match="could not be loaded"):
        load_catalogues([tmp_path / "missing"])
