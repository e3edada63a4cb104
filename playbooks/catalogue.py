"""The catalogue: every valid playbook from the shipped library and the configured folders, by id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import PlaybookValidationError, Problem, UnknownPlaybookError
from .loader import load_playbook
from .model import Playbook


def library_dir() -> Path:
    """The folder of playbooks shipped with this release."""
    return Path(__file__).resolve().parent / "library"


def playbook_files(folder: Path) -> list[Path]:
    """The playbook files in one folder (not recursive; hidden files skipped), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file())


class Catalogue:
    """Valid playbooks by id, and the problems of every file that could not be used."""

    def __init__(self, playbooks: dict[str, Playbook], problems: list[Problem]) -> None:
        self._playbooks = playbooks
        self.problems = problems

    def get(self, playbook_id: str) -> Playbook:
        """The playbook with this id; raises UnknownPlaybookError."""
        try:
            return self._playbooks[playbook_id]
        except KeyError:
            raise UnknownPlaybookError(playbook_id) from None

    def __contains__(self, playbook_id: object) -> bool:
        return playbook_id in self._playbooks

    def __iter__(self) -> Iterator[Playbook]:
        return iter(sorted(self._playbooks.values(), key=lambda p: p.id))

    def __len__(self) -> int:
        return len(self._playbooks)

    def describe_for_model(self, is_approved: Callable[[Playbook], bool]) -> list[dict[str, Any]]:
        """Prompt descriptions of the playbooks `is_approved` accepts (pass ApprovalStore.is_approved)."""
        return [p.describe_for_model() for p in self if is_approved(p)]


def load_library(dirs: Iterable[str | Path] = (), *, include_shipped: bool = True) -> Catalogue:
    """Load the shipped library, then each folder in `dirs`; broken files and duplicate ids become problems."""
    folders = ([library_dir()] if include_shipped else []) + [Path(d) for d in dirs]
    playbooks: dict[str, Playbook] = {}
    problems: list[Problem] = []
    for folder in folders:
        if not folder.is_dir():
            problems.append(Problem(str(folder), None, "", "playbook folder does not exist"))
            continue
        for file in playbook_files(folder):
            try:
                playbook = load_playbook(file)
            except PlaybookValidationError as exc:
                problems.extend(exc.problems)
                continue
            first = playbooks.get(playbook.id)
            if first is not None:
                # The first definition wins so a configured folder cannot shadow a shipped playbook.
                problems.append(Problem(str(file), 1, "id",
                                        f"playbook id {playbook.id!r} is already defined in {first.source}; ignored"))
                continue
            playbooks[playbook.id] = playbook
    return Catalogue(playbooks, problems)
