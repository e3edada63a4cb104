"""Factories for guidance unit tests: small catalogues built in code, and the shipped set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from watchstander.guidance.catalogue import load_catalogues
from watchstander.guidance.config import GuidanceConfig
from watchstander.guidance.model import Catalogue


@pytest.fixture(scope="session")
def shipped() -> list[Catalogue]:
    """The shipped catalogues, loaded and validated once."""
    return load_catalogues()


@pytest.fixture
def profile() -> GuidanceConfig:
    """The default organisation profile (Department of War)."""
    return GuidanceConfig()


@pytest.fixture
def make_catalogue() -> Callable[..., Catalogue]:
    """Build a catalogue from (id, deadline) pairs or obligation dicts."""
    def make(*obligations: tuple[str, str] | dict[str, Any], cat_id: str = "test", signed: date = date(2026, 6, 2)) -> Catalogue:
        obs = []
        for ob in obligations:
            if isinstance(ob, tuple):
                ob = {"id": ob[0], "deadline": ob[1]}
            obs.append({"section": "2(a)", "title": f"Obligation {ob['id']}", "clause": "Within 30 days of the date",
                        "lead": ["Secretary of War"], "deliverable": "A thing", **ob})
        return Catalogue.model_validate({"id": cat_id, "number": "1", "title": "Test order", "type": "executive-order",
                                         "signed": signed, "citation": "Test", "obligations": obs})
    return make
