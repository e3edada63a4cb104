"""The playbook model: the schema of a playbook file and the loaded, hash-identified Playbook."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import templates
from .actions import SshCommandArgs, get_action
from .errors import ParameterError
from .inputs import SAFE_VALUE, DeviceInput, InputSpec, Inventory
from .templates import Value

Risk = Literal["low", "medium", "high"]
SECTIONS = ("pre_checks", "steps", "post_checks", "rollback")
PLAYBOOK_ID = r"^[a-z][a-z0-9._-]{1,63}$"
InputName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Expect(_Frozen):
    """What a check step's result must show; the runner compares, the schema only records."""

    exit_status: int | None = Field(None, ge=0, le=255)
    output_contains: str | None = Field(None, min_length=1, max_length=500)
    output_excludes: str | None = Field(None, min_length=1, max_length=500)
    value: int | str | None = None


class Step(_Frozen):
    """One call of a registered action with its (templated) arguments."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    action: str = Field(min_length=1, max_length=64)
    description: str | None = Field(None, max_length=500)
    args: dict[str, Any]
    timeout_s: int | None = Field(None, ge=1, le=86400)
    expect: Expect | None = None


class PlaybookSpec(_Frozen):
    """The content of a playbook file."""

    id: str = Field(pattern=PLAYBOOK_ID)
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=4000)
    risk: Risk
    inputs: dict[InputName, InputSpec] = Field(default_factory=dict, max_length=32)
    timeout_s: int = Field(900, ge=1, le=86400)
    pre_checks: list[Step] = Field(default_factory=list, max_length=50)
    steps: list[Step] = Field(min_length=1, max_length=100)
    post_checks: list[Step] = Field(default_factory=list, max_length=50)
    rollback: list[Step] = Field(default_factory=list, max_length=100)
    # For devices without a timer of their own: the runner undoes a succeeded run (its rollback
    # section) this many minutes after it ended, persistently, across restarts of the agent.
    revert_after_minutes: int | str | None = Field(None, description="minutes, or {{ inputs.NAME }} of an integer input")


@dataclass(frozen=True)
class RenderedStep:
    """A step with every placeholder replaced by a validated parameter, ready for an executor."""

    section: str
    id: str
    action: str
    args: BaseModel
    timeout_s: int
    expect: Expect | None
    target: str | None

    @property
    def command_line(self) -> str | None:
        """For `ssh.command`, the exact line sent to the SSH server; None for other actions."""
        return self.args.command_line() if isinstance(self.args, SshCommandArgs) else None


@dataclass(frozen=True)
class Playbook:
    """A validated playbook, identified by the SHA-256 of the exact bytes it was parsed from."""

    spec: PlaybookSpec
    content_hash: str
    source: str

    @property
    def id(self) -> str:
        """The playbook id."""
        return self.spec.id

    @property
    def version(self) -> int:
        """The author's version number (approval binds to the hash, not to this)."""
        return self.spec.version

    @property
    def title(self) -> str:
        """The one-line title."""
        return self.spec.title

    @property
    def risk(self) -> Risk:
        """The declared risk."""
        return self.spec.risk

    def all_steps(self) -> Iterator[tuple[str, int, Step]]:
        """Every step as (section, index, step), sections in execution order."""
        for section in SECTIONS:
            for index, step in enumerate(getattr(self.spec, section)):
                yield section, index, step

    @property
    def actions(self) -> frozenset[str]:
        """The action names this playbook uses."""
        return frozenset(step.action for _, _, step in self.all_steps())

    @property
    def requires_approval(self) -> bool:
        """Whether running it needs an operator's approval (any step's action declares so)."""
        return any(get_action(name).requires_approval for name in self.actions)

    @property
    def changes_state(self) -> bool:
        """Whether any step may change a device."""
        return any(get_action(name).changes_state for name in self.actions)

    def validate_parameters(self, params: Mapping[str, object],
                            inventory: Inventory | None = None) -> dict[str, Value | list[Value]]:
        """Check parameters against the typed inputs; returns normalised values or raises ParameterError."""
        if not isinstance(params, Mapping):
            raise ParameterError("(parameters)", "expected a mapping of input name to value")
        for name in params:
            if not isinstance(name, str) or name not in self.spec.inputs:
                raise ParameterError(str(name)[:64], "this playbook has no such input")
        out: dict[str, Value | list[Value]] = {}
        for name, spec in self.spec.inputs.items():
            if name in params:
                raw = params[name]
            elif spec.default is not None:
                raw = spec.default
            else:
                raise ParameterError(name, "missing")
            try:
                value = spec.check(raw)
            except ValueError as exc:
                raise ParameterError(name, str(exc)[:200]) from None
            for item in value if isinstance(value, list) else [value]:
                # Every input type already guarantees this; checked once more here because this
                # is the last point before values are substituted into device commands.
                if not SAFE_VALUE.fullmatch(str(item)):
                    raise ParameterError(name, "value contains characters that may not reach a device")
            if isinstance(spec, DeviceInput) and inventory is not None:
                for device in value if isinstance(value, list) else [value]:
                    roles = inventory.roles_of(str(device))
                    if roles is None:
                        raise ParameterError(name, f"no device {device!r} in the inventory")
                    if spec.role not in roles:
                        raise ParameterError(name, f"device {device!r} does not have role {spec.role!r}")
            out[name] = value
        return out

    def render(self, params: Mapping[str, object], inventory: Inventory | None = None) -> list[RenderedStep]:
        """Validate `params`, then substitute them into every step (all sections, in order)."""
        values = self.validate_parameters(params, inventory)
        return [self._render_step(section, step, values) for section, _, step in self.all_steps()]

    def _render_step(self, section: str, step: Step, values: Mapping[str, Value | list[Value]]) -> RenderedStep:
        action = get_action(step.action)
        blame = next((n for _, s in templates.strings_in(step.args) for n in templates.references(s)),
                     "(parameters)")
        try:
            args = action.args_model.model_validate(templates.render(step.args, values))
            expect = None
            if step.expect is not None:
                expect = Expect.model_validate(templates.render(step.expect.model_dump(), values))
        except (ValidationError, templates.TemplateError) as exc:
            raise ParameterError(blame, f"step {step.id}: arguments invalid after substitution: {exc}") from None
        target = getattr(args, action.target_field) if action.target_field else None
        timeout = step.timeout_s or max(action.default_timeout_s, action.timeout_floor(args))
        return RenderedStep(section, step.id, step.action, args, timeout, expect, target)

    def revert_after_s(self, values: Mapping[str, Value | list[Value]]) -> int | None:
        """Seconds after a successful run when its rollback runs by itself, or None (no timed revert)."""
        raw = self.spec.revert_after_minutes
        if raw is None:
            return None
        minutes = templates.render_string(raw, values) if isinstance(raw, str) else raw
        if isinstance(minutes, (list, bool)) or not str(minutes).isdigit():
            raise ParameterError("revert_after_minutes", f"not a number of minutes: {minutes!r}")
        return int(minutes) * 60

    def describe_for_model(self) -> dict[str, Any]:
        """What a triage model needs to choose this playbook: id, title, risk and typed inputs, no commands."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "description": self.spec.description,
            "risk": self.risk,
            "changes_state": self.changes_state,
            "inputs": {name: spec.describe() for name, spec in self.spec.inputs.items()},
        }
