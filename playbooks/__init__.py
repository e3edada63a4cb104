"""Playbooks: the schema, the action registry, rendering of typed inputs, and the shipped library of approved playbooks.

The runner that executes approved runs is not built yet; approved suggestions stop at `approved`.
"""

from __future__ import annotations

from .actions import ACTIONS, ActionSpec, get_action, register_action
from .catalogue import Catalogue, library_dir, load_library
from .errors import (
    NotApprovedError,
    ParameterError,
    PlaybookError,
    PlaybookValidationError,
    Problem,
    UnknownActionError,
    UnknownPlaybookError,
)
from .inputs import Inventory
from .loader import load_playbook, load_playbook_bytes
from .model import Playbook, PlaybookSpec, RenderedStep, Step

__all__ = [
    "ACTIONS", "ActionSpec", "Catalogue", "Inventory", "NotApprovedError", "ParameterError", "Playbook",
    "PlaybookError", "PlaybookSpec", "PlaybookValidationError", "Problem", "RenderedStep", "Step",
    "UnknownActionError", "UnknownPlaybookError", "get_action", "library_dir", "load_library",
    "load_playbook", "load_playbook_bytes", "register_action",
]
