"""`watchstander devices list|check NAME`: the inventory, and whether the agent can really reach a device.

`check` connects, verifies the host key against the configured known_hosts, logs in with the
configured key, and for SNMP reads sysUpTime: nothing that changes state. An unknown or changed
host key is reported with the fingerprint the device offered, so an administrator can compare it
out of band before adding it to known_hosts.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from watchstander.connectors.errors import DeviceError
from watchstander.connectors.snmp import snmp_get
from watchstander.connectors.ssh import SshPool

from ..app.devices import DeviceDirectory
from ..errors import EXIT_OK, Exit
from .context import Context
from .output import dump_json, printable

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the devices command group."""
    p = sub.add_parser("devices", parents=[parent], help="the device inventory; check that a device is reachable")
    dsub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    ls = dsub.add_parser("list", parents=[parent], help="every [[devices]] entry, its roles and transports")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(handler=cmd_list)
    check = dsub.add_parser("check", parents=[parent],
                            help="connect, verify the host key, log in; changes nothing (exit 14 on failure)")
    check.add_argument("name", metavar="NAME")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(handler=cmd_check)


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    """The inventory, secrets as credential names only."""
    rows: list[dict[str, Any]] = []
    for d in ctx.config.devices:
        rows.append({"name": d.name, "address": d.address, "port": d.port, "platform": d.platform,
                     "roles": list(d.roles), "ssh": d.ssh is not None,
                     "snmp": d.snmp.version if d.snmp is not None else None, "description": d.description})
    if args.format == "json":
        print(dump_json({"devices": rows}))
        return EXIT_OK
    if not rows:
        print("no devices: add [[devices]] entries to the configuration (docs/runner.md)")
        return EXIT_OK
    print(f"{'NAME':<16} {'ADDRESS':<24} {'PLATFORM':<10} {'SSH':<4} {'SNMP':<5} ROLES")
    for r in rows:
        print(f"{printable(r['name']):<16} {printable(r['address'] + ':' + str(r['port'])):<24} "
              f"{r['platform']:<10} {'yes' if r['ssh'] else '-':<4} {r['snmp'] or '-':<5} "
              f"{printable(', '.join(r['roles']))}")
    return EXIT_OK


async def _check(ctx: Context, name: str) -> list[dict[str, Any]]:
    devices = DeviceDirectory(ctx.config)
    device = devices.get(name)
    results: list[dict[str, Any]] = []
    if device.ssh is not None:
        pool = SshPool()
        try:
            info = await pool.check(devices.ssh(name))
            results.append({"transport": "ssh", "ok": True, "fingerprint": info.fingerprint,
                            "key_type": info.key_type, "server": info.server_version})
        except DeviceError as exc:
            results.append({"transport": "ssh", "ok": False, "error": str(exc), "kind": type(exc).__name__,
                            "fingerprint": getattr(exc, "fingerprint", None)})
        finally:
            await pool.close()
    if device.snmp is not None:
        try:
            binds = await snmp_get(devices.snmp(name), [SYS_UPTIME], timeout_s=5.0)
            results.append({"transport": f"snmpv{device.snmp.version}", "ok": True,
                            "sysUpTime": binds[0].value if binds else None})
        except (DeviceError, ValueError) as exc:
            results.append({"transport": f"snmpv{device.snmp.version}", "ok": False, "error": str(exc),
                            "kind": type(exc).__name__})
    if not results:
        results.append({"transport": "-", "ok": False, "error": f"{name}: no [devices.ssh] or [devices.snmp] section",
                        "kind": "NotConfigured"})
    return results


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    """Reach one device over each configured transport."""
    try:
        results = asyncio.run(_check(ctx, args.name))
    except DeviceError as exc:  # an unknown name or an unreadable credential
        results = [{"transport": "-", "ok": False, "error": str(exc), "kind": type(exc).__name__}]
    ok = all(r["ok"] for r in results)
    if args.format == "json":
        print(dump_json({"device": args.name, "ok": ok, "checks": results}))
    else:
        for r in results:
            if r["ok"]:
                extra = f" host key {r['fingerprint']} ({r['key_type']}), {printable(r['server'])}" \
                    if r["transport"] == "ssh" else f" sysUpTime {r.get('sysUpTime')}"
                print(f"{printable(args.name)}: {r['transport']} ok:{extra}")
            else:
                print(f"{printable(args.name)}: {r['transport']} FAILED ({r['kind']}): {printable(r['error'])}")
    return EXIT_OK if ok else int(Exit.DEVICE)
