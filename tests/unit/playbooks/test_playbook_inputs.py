"""Typed inputs accept exactly their values; parameters are checked by input name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from watchstander.playbooks import ACTIONS, ActionSpec, ParameterError, UnknownActionError, get_action, load_library
from watchstander.playbooks.actions import SshCommandArgs, WaitArgs, register_action
from watchstander.playbooks.inputs import (
    CidrInput,
    DeviceInput,
    EnumInput,
    HostnameInput,
    IdentifierInput,
    IntegerInput,
    InterfaceInput,
    IpInput,
    Ipv4Input,
    Ipv6Input,
)

D = "d"


@pytest.mark.parametrize("spec, good, bad", [
    (Ipv4Input(type="ipv4", description=D), ["192.0.2.1", "0.0.0.0"],
     ["192.0.2.01", "192.0.2.1\n", " 192.0.2.1", "192.0.2", 3232235521, "::1", "192.0.2.1/32"]),
    (Ipv6Input(type="ipv6", description=D), ["2001:db8::1", "::1"],
     ["fe80::1%eth0", "fe80::1%$(id)", "2001:db8::1\n", "192.0.2.1", "2001:db8::/64"]),
    (IpInput(type="ip", description=D), ["192.0.2.1", "2001:db8::1"], ["fe80::1%x", "host", ""]),
    (CidrInput(type="cidr", description=D), ["192.0.2.0/24", "2001:db8::/64"],
     ["0.0.0.0/0", "192.0.2.1/24", "192.0.2.0", "10.0.0.0/8", "2001:db8::/32"]),
    (HostnameInput(type="hostname", description=D), ["web-01.example.mil", "a"],
     ["-a.example", "a..b", "a_b", "a.example\n", "a b", "a;b", "x" * 64, ""]),
    (InterfaceInput(type="interface", description=D), ["eth0", "GigabitEthernet1/0/24", "bond0.100", "Po1:2"],
     ["0eth", "eth0\n", "eth 0", "eth0;reboot", "e" * 65, "eth$0"]),
    (IntegerInput(type="integer", description=D, min=1, max=10), [1, 10, "7"],
     [0, 11, True, 1.5, "1e3", "7\n", None]),
    (EnumInput(type="enum", description=D, values=["info", "warning"]), ["info"], ["INFO", "info\n", 1]),
    (IdentifierInput(type="identifier", description=D), ["inc-2026-0001", "A:b.c_d"],
     ["-x", "a b", "a/b", "x" * 129]),
    (DeviceInput(type="device", role="switch", description=D), ["sw-floor2", "10.0.0.1"],
     ["sw floor", "sw\n", "../etc", ""]),
])
def test_input_types(spec: object, good: list[object], bad: list[object]) -> None:
    for value in good:
        spec.check(value)  # type: ignore[attr-defined]
    for value in bad:
        with pytest.raises(ValueError):
            spec.check(value)  # type: ignore[attr-defined]


def test_normalisation() -> None:
    assert Ipv6Input(type="ipv6", description=D).check("2001:DB8:0:0::1") == "2001:db8::1"
    assert HostnameInput(type="hostname", description=D).check("Web.Example") == "web.example"
    assert IntegerInput(type="integer", description=D, min=0, max=9).check("+5") == 5


def test_many_inputs_take_bounded_lists() -> None:
    spec = IpInput(type="ip", description=D, many=True, max_items=2)
    assert spec.check(["192.0.2.1", "2001:db8::1"]) == ["192.0.2.1", "2001:db8::1"]
    for bad in ("192.0.2.1", [], ["192.0.2.1"] * 3, ["192.0.2.1", "x"]):
        with pytest.raises(ValueError):
            spec.check(bad)


def test_input_declarations_are_checked() -> None:
    with pytest.raises(ValidationError):
        IntegerInput(type="integer", description=D, min=5, max=1)
    with pytest.raises(ValidationError):
        EnumInput(type="enum", description=D, values=["a b"])
    with pytest.raises(ValidationError):
        IntegerInput(type="integer", description=D, min=1, max=5, default=9)


def test_validate_parameters_names_the_input() -> None:
    playbook = load_library().get("block-address-nftables")
    good = {"firewall": "fw1", "address": "192.0.2.9"}
    assert playbook.validate_parameters(good) == {**good, "minutes": 60}
    cases = [({"firewall": "fw1"}, "address"), ({**good, "address": "192.0.2.9; reboot"}, "address"),
             ({**good, "minutes": 1}, "minutes"), ({**good, "extra": 1}, "extra")]
    for params, name in cases:
        with pytest.raises(ParameterError) as info:
            playbook.validate_parameters(params)
        assert info.value.input == name


class FakeInventory:
    """Inventory stand-in: a fixed map of device to roles."""

    def roles_of(self, device: str) -> frozenset[str] | None:
        """Roles of the two known devices."""
        return {"fw1": frozenset({"linux-firewall"}), "sw1": frozenset({"switch"})}.get(device)


@pytest.mark.parametrize("device, ok", [("fw1", True), ("sw1", False), ("nope", False)])
def test_device_role_is_checked_against_the_inventory(device: str, ok: bool) -> None:
    playbook = load_library().get("block-address-nftables")
    params = {"firewall": device, "address": "192.0.2.9"}
    if ok:
        playbook.validate_parameters(params, FakeInventory())
    else:
        with pytest.raises(ParameterError) as info:
            playbook.validate_parameters(params, FakeInventory())
        assert info.value.input == "firewall"


def test_action_registry() -> None:
    assert {"ssh.command", "ssh.config", "snmp.get", "snmp.set", "packets.capture", "notify.webhook",
            "wait"} <= set(ACTIONS)
    assert get_action("snmp.set").requires_approval and not get_action("snmp.get").requires_approval
    with pytest.raises(UnknownActionError):
        get_action("ssh.exec")
    with pytest.raises(ValueError, match="already registered"):
        register_action(ActionSpec("wait", WaitArgs, "again", requires_approval=False, changes_state=False))
    with pytest.raises(ValueError, match="dotted"):
        register_action(ActionSpec("Bad Name", WaitArgs, "x", requires_approval=False, changes_state=False))


def test_ssh_command_args_refuse_control_characters() -> None:
    with pytest.raises(ValidationError):
        SshCommandArgs(target="fw1", argv=["echo", "a\nreboot"])
    with pytest.raises(ValidationError):
        SshCommandArgs(target="fw1\n", argv=["echo"])
    assert SshCommandArgs(target="fw1", argv=["echo", "a b", "$x"]).command_line() == "echo 'a b' '$x'"
