"""Reading a playbook file: parse, validate the schema, then check every step against the registry."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import templates
from .actions import get_action
from .errors import PlaybookValidationError, Problem, UnknownActionError
from .inputs import DeviceInput, IntegerInput
from .model import Playbook, PlaybookSpec, Step
from .templates import Value
from .yamlsafe import MAX_BYTES, KeyPath, LoadedYaml, key_path, locate, parse_yaml


def load_playbook(path: str | Path) -> Playbook:
    """Load and fully validate one playbook file; raises PlaybookValidationError naming file, line and key."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PlaybookValidationError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    return load_playbook_bytes(raw, str(path))


def load_playbook_bytes(raw: bytes, source: str = "<bytes>") -> Playbook:
    """Validate playbook content; the hash is of exactly these bytes, the ones that were parsed."""
    loaded = parse_yaml(raw, source)
    if not isinstance(loaded.data, dict):
        raise PlaybookValidationError([Problem(source, 1, "", "a playbook must be a mapping of keys")])
    try:
        spec = PlaybookSpec.model_validate(loaded.data)
    except ValidationError as exc:
        raise PlaybookValidationError(_schema_problems(exc, loaded, source)) from None
    problems = list(_semantic_problems(spec, loaded, source))
    if problems:
        raise PlaybookValidationError(problems)
    return Playbook(spec, hashlib.sha256(raw).hexdigest(), source)


def _schema_problems(exc: ValidationError, loaded: LoadedYaml, source: str) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        key, line = locate(loaded, tuple(err["loc"]))
        out.append(Problem(source, line, key, err["msg"]))
    return out


def _problem(loaded: LoadedYaml, source: str, path: KeyPath, message: str) -> Problem:
    key, line = locate(loaded, path)
    return Problem(source, line, key, message)


def _semantic_problems(spec: PlaybookSpec, loaded: LoadedYaml, source: str) -> Iterator[Problem]:
    seen: dict[str, KeyPath] = {}
    used: set[str] = set()
    for section in ("pre_checks", "steps", "post_checks", "rollback"):
        for index, step in enumerate(getattr(spec, section)):
            where: KeyPath = (section, index)
            if step.id in seen:
                yield _problem(loaded, source, (*where, "id"),
                               f"step id {step.id!r} is already used at {key_path(seen[step.id])}")
            seen.setdefault(step.id, where)
            yield from _step_problems(spec, step, where, loaded, source, used)
    yield from _revert_problems(spec, loaded, source, used)
    for name in spec.inputs:
        if name not in used:
            yield _problem(loaded, source, ("inputs", name), "input is declared but no step uses it")


def _revert_problems(spec: PlaybookSpec, loaded: LoadedYaml, source: str, used: set[str]) -> Iterator[Problem]:
    raw = spec.revert_after_minutes
    if raw is None:
        return
    if not spec.rollback:
        yield _problem(loaded, source, ("revert_after_minutes",), "a timed revert needs a rollback section")
    if isinstance(raw, int):
        if not 1 <= raw <= 525600:
            yield _problem(loaded, source, ("revert_after_minutes",), "must be from 1 to 525600 minutes")
        return
    name = templates.whole_reference(raw)
    spec_in = spec.inputs.get(name) if name else None
    if not isinstance(spec_in, IntegerInput) or spec_in.many or spec_in.min < 1:
        yield _problem(loaded, source, ("revert_after_minutes",),
                       "must be a number of minutes or exactly {{ inputs.NAME }} of an integer input with min >= 1")
        return
    assert name is not None  # an IntegerInput was found under it
    used.add(name)


def _step_problems(spec: PlaybookSpec, step: Step, where: KeyPath, loaded: LoadedYaml, source: str,
                   used: set[str]) -> Iterator[Problem]:
    try:
        action = get_action(step.action)
    except UnknownActionError as exc:
        action = None
        yield _problem(loaded, source, (*where, "action"), str(exc))
    target_field = action.target_field if action is not None else None
    bad_template = False
    expect = step.expect.model_dump(exclude_none=True) if step.expect else {}
    for sub, tree in (("args", step.args), ("expect", expect)):
        for path, text in templates.strings_in(tree):
            full = (*where, sub, *path)
            problem = templates.syntax_problem(text)
            if problem:
                bad_template = True
                yield _problem(loaded, source, full, problem)
            for name in templates.references(text):
                used.add(name)
                spec_in = spec.inputs.get(name)
                if spec_in is None:
                    bad_template = True
                    yield _problem(loaded, source, full, f"refers to undeclared input {name!r}")
                elif isinstance(spec_in, DeviceInput) and action is not None and path != (target_field,):
                    bad_template = True
                    yield _problem(loaded, source, full,
                                   f"device input {name!r} may only select the step's {target_field or 'target'}")
    if action is None:
        return
    if action.target_field is not None:
        raw_target = step.args.get(action.target_field)
        target_name = templates.whole_reference(raw_target) if isinstance(raw_target, str) else None
        target_input = spec.inputs.get(target_name) if target_name else None
        if not isinstance(target_input, DeviceInput) or target_input.many:
            bad_template = True
            yield _problem(loaded, source, (*where, "args", action.target_field),
                           "must be exactly {{ inputs.NAME }} naming a device input (type: device)")
    if bad_template:
        return
    # Type-check the arguments by rendering them with sample values of every declared input:
    # each input's extremes (integer bounds, every enum value, each address family) in turn.
    for values, varied in _sample_values(spec):
        try:
            args = action.args_model.model_validate(templates.render(step.args, values))
            if expect:
                templates.render(expect, values)
        except templates.TemplateError as exc:
            yield _problem(loaded, source, (*where, "args"), str(exc))
            return
        except ValidationError as exc:
            suffix = f" (when {varied})" if varied else ""
            for err in exc.errors(include_url=False):
                yield _problem(loaded, source, (*where, "args", *err["loc"]), err["msg"] + suffix)
            return
        floor = action.timeout_floor(args)
        timeout = step.timeout_s or max(action.default_timeout_s, floor)
        if not floor <= timeout <= action.max_timeout_s:
            yield _problem(loaded, source, (*where, "timeout_s"),
                           f"{step.action} needs a timeout from {floor} to {action.max_timeout_s} s")
            return
        if timeout > spec.timeout_s:
            yield _problem(loaded, source, (*where, "timeout_s"),
                           f"step timeout {timeout} s exceeds the playbook's timeout_s {spec.timeout_s}")
            return


def _sample_values(spec: PlaybookSpec) -> Iterator[tuple[dict[str, Value | list[Value]], str]]:
    def wrap(value: Value, many: bool) -> Value | list[Value]:
        return [value] if many else value

    base: dict[str, Value | list[Value]] = {
        name: wrap(inp.samples()[0], inp.many) for name, inp in spec.inputs.items()
    }
    yield base, ""
    for name, inp in spec.inputs.items():
        for sample in itertools.islice(inp.samples(), 1, 64):
            yield {**base, name: wrap(sample, inp.many)}, f"{name} is {sample!r}"


def describe_problems(problems: list[Problem]) -> list[dict[str, Any]]:
    """Problems as plain data for JSON output."""
    return [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in problems]
