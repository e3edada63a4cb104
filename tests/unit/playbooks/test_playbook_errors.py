"""Broken playbooks are rejected with messages naming file, line and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from watchstander.playbooks import PlaybookValidationError, Problem, load_playbook

Write = Callable[..., Path]


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(path)
    return info.value.problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_minimal_playbook_is_valid(write_playbook: Write, minimal_text: str) -> None:
    assert load_playbook(write_playbook(minimal_text)).id == "test-block"


def test_bad_yaml_names_the_line(write_playbook: Write, minimal_text: str) -> None:
    path = write_playbook(minimal_text.replace("risk: low", "risk: [low"))
    problem = only(problems_of(path))
    assert problem.file == str(path)
    assert problem.line is not None and problem.line >= 5
    assert "YAML" in problem.message


def test_unknown_action(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text.replace("ssh.command", "ssh.exec"))))
    assert (problem.line, problem.key) == (16, "steps[0].action")
    assert "unknown action 'ssh.exec'" in problem.message
    assert str(problem).startswith(f"{problem.file}:16: steps[0].action: ")


def test_unknown_input_reference(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text.replace('"{ {{ inputs.address }} }"', '"{ {{ inputs.adress }} }"')
    problems = problems_of(write_playbook(text))
    keys = {(p.line, p.key) for p in problems}
    assert (19, "steps[0].args.argv[6]") in keys
    assert any("undeclared input 'adress'" in p.message for p in problems)
    assert (11, "inputs.address") in keys  # now unused


def test_wrong_type_of_field(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text.replace("version: 1", "version: one"))))
    assert (problem.line, problem.key) == (2, "version")


def test_wrong_argument_type(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text.replace('argv: [nft, add, element, inet, t, s, "{ {{ inputs.address }} }"]', "argv: nft")
    problems = problems_of(write_playbook(text))
    assert (19, "steps[0].args.argv") in {(p.line, p.key) for p in problems}


def test_unknown_argument(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text + "      shell: true\n")))
    assert (problem.line, problem.key) == (20, "steps[0].args.shell")
    assert "Extra inputs" in problem.message


def test_duplicate_key(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text.replace("risk: low\n", "risk: low\nrisk: high\n"))))
    assert (problem.line, problem.key) == (6, "risk")
    assert "duplicate key (first at line 5)" in problem.message


def test_missing_field(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text.replace("risk: low\n", ""))))
    assert (problem.line, problem.key) == (1, "risk")
    assert "required" in problem.message.lower()


def test_missing_field_inside_an_input(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text.replace("    role: linux-firewall\n", ""))))
    assert (problem.line, problem.key) == (7, "inputs.fw.role")


def test_unknown_input_type(write_playbook: Write, minimal_text: str) -> None:
    problem = only(problems_of(write_playbook(minimal_text.replace("type: ipv4", "type: text"))))
    assert (problem.line, problem.key) == (11, "inputs.address")
    assert "ipv4" in problem.message  # lists the allowed tags


def test_integer_input_needs_bounds(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text.replace("type: ipv4", "type: integer")
    problems = problems_of(write_playbook(text))
    assert {p.key for p in problems} >= {"inputs.address.min", "inputs.address.max"}


def test_target_must_be_a_device_input(write_playbook: Write, minimal_text: str) -> None:
    problems = problems_of(write_playbook(minimal_text.replace('target: "{{ inputs.fw }}"', "target: fw1")))
    assert any(p.key == "steps[0].args.target" and p.line == 18 for p in problems)


def test_template_expressions_are_refused(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text.replace("{{ inputs.address }}", "{{ inputs.address | lower }}")
    problems = problems_of(write_playbook(text))
    assert any(p.key == "steps[0].args.argv[6]" and "only {{ inputs.NAME }}" in p.message for p in problems)


def test_argument_type_checked_with_sample_values(write_playbook: Write, minimal_text: str) -> None:
    # An integer input whose range exceeds the action's bound is caught at its maximum.
    text = minimal_text + """\
  - id: pause
    action: wait
    args:
      seconds: "{{ inputs.secs }}"
""" + "timeout_s: 7200\n"
    text = text.replace("inputs:\n", "inputs:\n  secs:\n    type: integer\n    min: 1\n    max: 99999\n"
                                     "    description: seconds\n")
    problems = problems_of(write_playbook(text))
    assert any(p.key == "steps[1].args.seconds" and "secs is 99999" in p.message for p in problems)


def test_duplicate_step_ids(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text + "rollback:\n  - id: add\n    action: wait\n    args: {seconds: 1}\n"
    problem = only(problems_of(write_playbook(text)))
    assert (problem.line, problem.key) == (21, "rollback[0].id")


def test_step_timeout_beyond_action_maximum(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text.replace("    action: ssh.command\n", "    action: ssh.command\n    timeout_s: 5000\n")
    problem = only(problems_of(write_playbook(text)))
    assert problem.key == "steps[0].timeout_s" and "1 to 600" in problem.message


@pytest.mark.parametrize("snippet, message", [
    ("a: &x 1\n", "anchors and aliases"),
    ("a: !!binary aGk=\n", "not allowed"),
    ("yes: 1\n", "plain strings"),
    ("when: 2026-01-01\n", "not allowed"),
])
def test_yaml_subset(write_playbook: Write, minimal_text: str, snippet: str, message: str) -> None:
    problems = problems_of(write_playbook(minimal_text + snippet))
    assert any(message in p.message and p.line == 20 for p in problems)


def test_not_a_mapping_and_empty_and_unreadable(write_playbook: Write, tmp_path: Path) -> None:
    assert "mapping" in only(problems_of(write_playbook("- a\n- b\n"))).message
    assert "no YAML document" in only(problems_of(write_playbook(""))).message
    assert "cannot read" in only(problems_of(tmp_path / "missing.yaml")).message


def test_oversized_file(write_playbook: Write, minimal_text: str) -> None:
    path = write_playbook(minimal_text + "#" * (300 * 1024) + "\n")
    assert "larger than" in only(problems_of(path)).message


def test_not_utf8(write_playbook: Write, minimal_text: str) -> None:
    path = write_playbook(minimal_text.encode() + b"x: \xff\n")
    problem = only(problems_of(path))
    assert problem.line == 20 and "UTF-8" in problem.message


def test_all_problems_reported_together(write_playbook: Write, minimal_text: str) -> None:
    text = minimal_text.replace("version: 1", "version: 0").replace("risk: low", "risk: extreme")
    problems = problems_of(write_playbook(text))
    assert {(p.line, p.key) for p in problems} == {(2, "version"), (5, "risk")}
