"""The catalogue: shipped library first, configured folders after, problems kept rather than raised."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from watchstander.playbooks import UnknownPlaybookError, library_dir, load_library

Write = Callable[..., Path]


def test_configured_folder_adds_playbooks(write_playbook: Write, minimal_text: str) -> None:
    path = write_playbook(minimal_text, "custom.yaml")
    catalogue = load_library([path.parent])
    assert "test-block" in catalogue and catalogue.get("test-block").source == str(path)
    assert catalogue.problems == []


def test_a_folder_cannot_shadow_a_shipped_id(write_playbook: Write, minimal_text: str) -> None:
    path = write_playbook(minimal_text.replace("id: test-block", "id: notify-webhook"), "shadow.yaml")
    catalogue = load_library([path.parent])
    assert catalogue.get("notify-webhook").source.startswith(str(library_dir()))
    (problem,) = catalogue.problems
    assert (problem.file, problem.line, problem.key) == (str(path), 1, "id")


def test_broken_files_and_missing_folders_become_problems(write_playbook: Write, tmp_path: Path) -> None:
    write_playbook("id: [\n", "broken.yaml")
    write_playbook("not: a playbook\n", ".hidden.yaml")
    catalogue = load_library([tmp_path, tmp_path / "absent"], include_shipped=False)
    assert len(catalogue) == 0
    assert [p.file for p in catalogue.problems] == [str(tmp_path / "broken.yaml"), str(tmp_path / "absent")]
    with pytest.raises(UnknownPlaybookError):
        catalogue.get("notify-webhook")


def test_model_menu_lists_only_what_the_filter_approves() -> None:
    catalogue = load_library()
    menu = catalogue.describe_for_model(lambda p: p.risk == "low")
    assert {m["id"] for m in menu} == {"linux-volatile-forensics", "notify-webhook"}
    notify = next(m for m in menu if m["id"] == "notify-webhook")
    assert notify["inputs"]["severity"] == {
        "type": "enum", "values": ["info", "warning", "critical"], "description": "How urgent the message is.",
        "required": True}
