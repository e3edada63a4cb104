"""Loading catalogues: the shipped ones (package data), a site's own folders, and single files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import CatalogueError
from .model import Catalogue, Obligation
from .rules import AfterAnchor, ObligationStart, Recurring


def _problems(where: str, exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append((f"{where}: {loc}" if loc else where, err["msg"]))
    return out


def parse_catalogue(text: str, where: str = "<catalogue>") -> Catalogue:
    """Validate catalogue YAML text; raises CatalogueError listing every problem."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{where}: not valid YAML", [(where, str(exc))]) from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"{where}: a catalogue is a mapping", [(where, "top level must be a mapping")])
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise CatalogueError(f"{where}: invalid catalogue", _problems(where, exc)) from exc


def load_catalogue_file(path: Path) -> Catalogue:
    """Read and validate one catalogue file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"cannot read {path}: {exc.strerror}", [(str(path), str(exc.strerror))]) from exc
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path} is not UTF-8 text", [(str(path), str(exc))]) from exc
    return parse_catalogue(text, str(path))


def shipped_catalogues() -> list[Catalogue]:
    """The reviewed catalogues that ship with the package, sorted by signing date."""
    folder = resources.files("watchstander.guidance").joinpath("catalogues")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            found.append(parse_catalogue(entry.read_text(encoding="utf-8"), f"catalogues/{entry.name}"))
    return found


def load_catalogues(extra_dirs: Sequence[Path] = (), *, include_shipped: bool = True) -> list[Catalogue]:
    """Shipped catalogues plus every *.yaml in `extra_dirs`, validated together as one set."""
    catalogues = shipped_catalogues() if include_shipped else []
    problems: list[tuple[str, str]] = []
    for folder in extra_dirs:
        if not folder.is_dir():
            problems.append((str(folder), "catalogue folder does not exist"))
            continue
        for path in sorted(folder.glob("*.yaml")):
            try:
                catalogues.append(load_catalogue_file(path))
            except CatalogueError as exc:
                problems.extend(exc.problems or [(str(path), str(exc))])
    if problems:
        raise CatalogueError("catalogues could not be loaded", problems)
    check_catalogue_set(catalogues)
    return catalogues


def all_obligations(catalogues: Iterable[Catalogue]) -> dict[str, tuple[Catalogue, Obligation]]:
    """Every obligation by id, with its catalogue."""
    return {ob.id: (cat, ob) for cat in catalogues for ob in cat.obligations}


def check_catalogue_set(catalogues: Sequence[Catalogue], extra: Iterable[Obligation] = ()) -> None:
    """Ids unique across catalogues, anchors and `implements` resolve, no dependency cycles."""
    problems: list[tuple[str, str]] = []
    cat_ids: set[str] = set()
    for cat in catalogues:
        if cat.id in cat_ids:
            problems.append((cat.id, "two catalogues share this id"))
        cat_ids.add(cat.id)
    owners: dict[str, str] = {}
    obligations: list[Obligation] = [ob for cat in catalogues for ob in cat.obligations] + list(extra)
    for ob in obligations:
        if ob.id in owners:
            problems.append((ob.id, "obligation id used twice"))
        owners[ob.id] = ob.id
    deps: dict[str, str | None] = {}
    for ob in obligations:
        dep = depends_on(ob)
        deps[ob.id] = dep
        if dep is not None and dep not in owners:
            problems.append((ob.id, f"deadline counts from unknown obligation {dep!r}"))
        if ob.implements is not None and ob.implements not in owners:
            problems.append((ob.id, f"implements unknown obligation {ob.implements!r}"))
    for start in deps:
        seen = [start]
        nxt = deps.get(start)
        while nxt is not None and nxt in deps:
            if nxt in seen:
                problems.append((start, "deadline dependency cycle: " + " -> ".join(seen + [nxt])))
                break
            seen.append(nxt)
            nxt = deps.get(nxt)
    if problems:
        raise CatalogueError("catalogue set is inconsistent", problems)


def depends_on(ob: Obligation) -> str | None:
    """The obligation whose completion starts this one's clock, if any."""
    rule = ob.deadline
    anchor = rule.anchor if isinstance(rule, AfterAnchor) else rule.start if isinstance(rule, Recurring) else None
    return anchor.id if isinstance(anchor, ObligationStart) else None
