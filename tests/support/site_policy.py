"""The site policy the console and review-queue tests share: a protected network, a firewall and a switch
with their playbook defaults."""

from __future__ import annotations

SITE_POLICY_TOML = """
[[assets]]
cidr = "10.0.0.0/24"
name = "core"
protected = true

[[devices]]
name = "fw1"
address = "192.0.2.1"
roles = ["linux-firewall"]

[[devices]]
name = "sw1"
address = "192.0.2.2"
roles = ["switch"]

[policy.defaults.block-address-nftables]
firewall = "fw1"

[policy.defaults.switch-port-shutdown]
switch = "sw1"
"""
