"""Every shipped playbook loads, validates and renders with typical parameters."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from watchstander.playbooks import ACTIONS, library_dir, load_library, load_playbook
from watchstander.playbooks.catalogue import playbook_files
from watchstander.playbooks.inputs import SAFE_VALUE

SHIPPED = playbook_files(library_dir())

# One typical parameter set per shipped playbook; a new playbook without one fails the test below.
PARAMS: dict[str, dict[str, object]] = {
    "block-address-nftables": {"firewall": "fw-edge-1", "address": "198.51.100.7", "minutes": 30},
    "block-address-ios-acl": {"router": "rtr-edge-1", "address": "198.51.100.7", "sequence": 110},
    "switch-port-shutdown": {"switch": "sw-floor2", "if_index": 10124},
    "switch-port-enable": {"switch": "sw-floor2", "if_index": 10124},
    "linux-volatile-forensics": {"host": "web-01"},
    "capture-incident-traffic": {"addresses": ["198.51.100.7", "2001:db8::7"], "interface": "eth1"},
    "notify-webhook": {"incident": "inc-2026-0042", "severity": "warning"},
}

REQUIRED = {
    "block-address-nftables", "block-address-ios-acl", "switch-port-shutdown", "switch-port-enable",
    "linux-volatile-forensics", "capture-incident-traffic", "notify-webhook",
}


def test_library_is_shipped_as_package_data() -> None:
    assert len(SHIPPED) >= len(REQUIRED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_playbook_loads_and_validates(path: Path) -> None:
    playbook = load_playbook(path)
    assert path.name == f"{playbook.id}.yaml"
    assert len(playbook.content_hash) == 64
    assert playbook.actions <= set(ACTIONS)
    description = playbook.describe_for_model()
    assert description["id"] == playbook.id and description["risk"] in ("low", "medium", "high")
    assert all(spec["description"] for spec in description["inputs"].values())
    assert "steps" not in description  # the model sees what a playbook does, never its commands


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_playbook_renders(path: Path) -> None:
    playbook = load_playbook(path)
    rendered = playbook.render(PARAMS[playbook.id])
    assert [s.id for s in rendered] == [step.id for _, _, step in playbook.all_steps()]
    for step in rendered:
        assert step.timeout_s <= playbook.spec.timeout_s
        line = step.command_line
        if line is not None:
            assert shlex.split(line) == list(step.args.argv)  # type: ignore[attr-defined]


def test_catalogue_has_the_required_playbooks_and_no_problems() -> None:
    catalogue = load_library()
    assert catalogue.problems == []
    assert REQUIRED <= {p.id for p in catalogue}


def test_nftables_block_renders_exact_command() -> None:
    playbook = load_library().get("block-address-nftables")
    steps = {s.id: s for s in playbook.render(PARAMS["block-address-nftables"])}
    assert steps["add-element"].target == "fw-edge-1"
    assert steps["add-element"].command_line == (
        "sudo -n nft add element inet watchstander block_v4 '{ 198.51.100.7 timeout 30m }'")
    assert steps["delete-element"].section == "rollback"


def test_capture_splices_the_address_list() -> None:
    playbook = load_library().get("capture-incident-traffic")
    (step,) = playbook.render(PARAMS["capture-incident-traffic"])
    assert step.args.hosts == ["198.51.100.7", "2001:db8::7"]  # type: ignore[attr-defined]
    assert step.timeout_s == 125  # the default duration 120 s plus the action's margin


def test_port_shutdown_targets_if_admin_status() -> None:
    playbook = load_library().get("switch-port-shutdown")
    steps = {s.id: s for s in playbook.render(PARAMS["switch-port-shutdown"])}
    assert steps["set-down"].args.oid == "1.3.6.1.2.1.2.2.1.7.10124"  # type: ignore[attr-defined]
    assert steps["set-down"].args.value == 2  # type: ignore[attr-defined]
    assert steps["is-down"].expect is not None and steps["is-down"].expect.value == 2


def test_rendered_values_use_only_the_safe_alphabet() -> None:
    for playbook in load_library():
        values = playbook.validate_parameters(PARAMS[playbook.id])
        for value in values.values():
            for item in value if isinstance(value, list) else [value]:
                assert SAFE_VALUE.fullmatch(str(item))
