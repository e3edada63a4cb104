"""`watchstander audit verify|export`: check the hash chain, and hand the log to a SIEM.

With a daemon running, both go through its control socket (compliance role); without one, or
with --local (a copy of the store, forensics), they read the store file in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..control.audit_methods import MAX_PAGE, normalise_since, record_page, verify_result
from ..control.client import via_daemon_or_local
from ..errors import EXIT_OK, Exit, InputError
from ..store.seal import SealError, SealPaths, key_id, load_public_key, load_signing_key, public_pem, seal_paths
from .context import Context

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT_AUDIT_BROKEN = Exit.AUDIT_BROKEN

CEF_VENDOR = "Watchstander"
CEF_PRODUCT = "Watchstander"
# CEF severity 0-10 by the action's first dotted part; anything else is informational (3).
CEF_SEVERITY = {"run": 7, "playbook": 7, "suggestion": 5, "guard": 5, "approval": 6, "triage": 4}


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add the `audit` command group."""
    audit = sub.add_parser("audit", parents=[parent], help="verify and export the hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = audit_sub.add_parser("verify", parents=[parent],
                                  help=f"walk the chain; exit {EXIT_AUDIT_BROKEN} naming the first broken record")
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.add_argument("--public-key", type=Path, metavar="FILE",
                        help="check the signed checkpoints with this Ed25519 key (the auditor's own copy) "
                             "instead of the one next to the signing key")
    verify.add_argument("--local", action="store_true",
                        help="read the store file named by the config even when a daemon is running")
    verify.set_defaults(handler=cmd_audit_verify)

    key = audit_sub.add_parser("key", parents=[parent],
                               help="print this node's audit verification key (PEM) to give to auditors and "
                                    "to the other nodes' [audit] trusted_keys",
                               description="Prints the public half of this node's checkpoint signing key; its "
                                           "key id goes to standard error. Reads the files only, never the daemon.")
    key.set_defaults(handler=cmd_audit_key)

    export = audit_sub.add_parser("export", parents=[parent], help="write the records as JSON lines or CEF",
                                  description="One record per line, in sequence order. jsonl carries seq, time, "
                                              "actor, action, subject, data, prev_hash and hash; CEF is for SIEMs.")
    export.add_argument("--format", choices=("jsonl", "cef"), default="jsonl")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")
    export.add_argument("--since", metavar="ISO", type=_since_in_range,
                        help="only records at or after this time (naive means UTC)")
    export.add_argument("--local", action="store_true",
                        help="read the store file named by the config even when a daemon is running")
    export.set_defaults(handler=cmd_audit_export)


def _seal_paths(ctx: Context) -> SealPaths:
    return seal_paths(ctx.config.audit, ctx.config.store.resolved_url())


def _since_in_range(value: str) -> str:
    """A --since that parses must be a time UTC can express (exit 2 otherwise); the rest is checked later."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value  # not ISO 8601: normalise_since says so (exit 4)
    try:
        (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"out of range: {value!r} is outside the years 1-9999 in UTC") from None
    return value


def cmd_audit_verify(args: argparse.Namespace, ctx: Context) -> int:
    """Verify the chain and its checkpoints; 0 when vouched for, EXIT_AUDIT_BROKEN naming the first bad record."""
    pem: bytes | None = None
    if args.public_key is not None:
        try:
            pem = args.public_key.read_bytes()[:4096]
        except OSError as exc:
            raise InputError(f"cannot read {args.public_key}: {exc.strerror}") from exc
    params: dict[str, Any] = {"public_key": pem.decode("ascii", "replace")} if pem is not None else {}
    result = via_daemon_or_local(
        ctx, "audit.verify", params,
        lambda _who: verify_result(ctx.query_app.audit, ctx.query_store, _seal_paths(ctx), pem,
                                   ctx.config.audit.trusted_keys), local=args.local)
    if args.format == "json":
        print(json.dumps(result, sort_keys=True))
        return EXIT_OK if result["ok"] else EXIT_AUDIT_BROKEN
    if result["ok"]:
        print(f"ok: {result['checked']} records")
    else:
        print(f"broken: record {result['broken_seq']}: {escape_text(str(result['reason']))} "
              f"({result['checked']} records verified before it)")
    if not result.get("sealing"):
        print("not sealed: no verification key, so only the unkeyed hash chain was checked "
              "(anyone who can write the store can re-chain it); see docs/security-audit.md", file=sys.stderr)
    else:
        print(f"checkpoints: {result['checkpoints']} signed by key {result['key']}, "
              f"sealed through record {result['sealed_through']}")
        for signer in result.get("signers") or []:
            if not signer.get("own"):
                print(f"checkpoints: {signer['checkpoints']} signed by trusted key {signer['key']}, "
                      f"sealed through record {signer['sealed_through']}")
        unsealed = result.get("unsealed") or []
        if unsealed:
            print(f"not yet sealed: records {unsealed[0]}-{unsealed[-1]} ({len(unsealed)})")
        for row in result.get("untrusted") or []:
            print(f"ignored: {row['checkpoints']} checkpoints in the store signed by key "
                  f"{escape_text(str(row['key']))}, which is not in [audit] trusted_keys")
        for note in result.get("notes") or []:
            print(f"note: {escape_text(str(note))}", file=sys.stderr)
    return EXIT_OK if result["ok"] else EXIT_AUDIT_BROKEN


def cmd_audit_key(args: argparse.Namespace, ctx: Context) -> int:
    """Print this node's verification key (PEM) on standard output and its key id on standard error."""
    paths = _seal_paths(ctx)
    try:
        public = _current_public_key(paths)
    except SealError as exc:
        raise InputError(str(exc)) from exc
    sys.stdout.write(public_pem(public).decode("ascii"))
    print(f"key id {key_id(public)} ({paths.public_key})", file=sys.stderr)
    return EXIT_OK


def _current_public_key(paths: SealPaths) -> Ed25519PublicKey:
    """The key the node signs with: from the signing key when readable (the .pub file may be stale), else the .pub."""
    signing: Ed25519PublicKey | None = None
    if paths.signing_key.exists():
        try:
            signing = load_signing_key(paths.signing_key).public_key()
        except SealError as exc:
            if not paths.public_key.exists():
                raise
            print(f"warning: {exc}; printing {paths.public_key} instead", file=sys.stderr)
    if signing is None:
        if not paths.public_key.exists():
            raise InputError(f"no audit signing key yet at {paths.signing_key}: the daemon creates it (and "
                             f"{paths.public_key}) at its first seal")
        return load_public_key(paths.public_key)
    if paths.public_key.exists():
        try:
            on_disk = key_id(load_public_key(paths.public_key))
        except SealError as exc:
            on_disk = f"unreadable ({exc})"
        if on_disk != key_id(signing):
            print(f"warning: {paths.public_key} holds key {on_disk}, not the signing key's {key_id(signing)} "
                  "(a key rotation left it stale): printing the signing key's; replace that file",
                  file=sys.stderr)
    return signing


def cmd_audit_export(args: argparse.Namespace, ctx: Context) -> int:
    """Write every record (from --since on) as JSON lines or CEF."""
    since = normalise_since(args.since) if args.since else None  # InvalidParams: exit 4, never a traceback
    version = _version()
    try:
        # Opened before the first record is read, so that an unwritable --out fails before any work.
        sink = open(args.out, "w", encoding="utf-8", newline="\n") if args.out else nullcontext(sys.stdout)  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot write {args.out}: {exc.strerror}") from exc
    count = 0
    with sink as out:
        for rec in _records(ctx, since, args.local):
            out.write((json.dumps(rec, ensure_ascii=True, sort_keys=True) if args.format == "jsonl"
                       else cef_line(rec, version)) + "\n")
            count += 1
    if args.out:
        print(f"{count} records written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _records(ctx: Context, since: str | None, local: bool) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        params: dict[str, Any] = {"after": after, "limit": MAX_PAGE}
        if since is not None:
            params["since"] = since

        def local_page(_who: str, a: int = after) -> dict[str, Any]:
            return record_page(ctx.query_store, a, MAX_PAGE, since)

        page = via_daemon_or_local(ctx, "audit.records", params, local_page, local=local)
        yield from page["records"]
        if page["next"] is None:
            return
        after = page["next"]


def _version() -> str:
    try:
        return metadata.version("watchstander")
    except metadata.PackageNotFoundError:
        return "0"


_VISIBLE_ESCAPE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def escape_text(text: str, keep: str = "") -> str:
    """Control, format (bidi, zero-width), separator and surrogate characters as \\xHH / \\uHHHH / \\UHHHHHHHH."""
    out = []
    for ch in text:
        if ch not in keep and unicodedata.category(ch) in _VISIBLE_ESCAPE_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def cef_header(value: object) -> str:
    """A CEF header field: backslash and pipe escaped; line breaks (not allowed there) become spaces."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return escape_text(text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def cef_extension(value: object) -> str:
    """A CEF extension value: backslash, equals sign and line breaks escaped, other controls as \\x/\\u."""
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    text = text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
    return escape_text(text)


def cef_line(rec: dict[str, Any], version: str = "0") -> str:
    """One audit record as a CEF:0 line."""
    action = str(rec["action"])
    severity = CEF_SEVERITY.get(action.split(".", 1)[0], 3)
    data = rec["data"] if isinstance(rec["data"], str) else json.dumps(
        rec["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    header = "|".join(cef_header(v) for v in (CEF_VENDOR, CEF_PRODUCT, version, action,
                                                f"{action} {rec['subject']}", severity))
    ext = {
        "rt": _epoch_ms(str(rec["time"])),
        "externalId": rec["seq"],
        "suser": rec["actor"],
        "act": action,
        "cs1Label": "subject", "cs1": rec["subject"],
        "cs2Label": "data", "cs2": data,
        "cs3Label": "hash", "cs3": rec["hash"],
        "cs4Label": "prev_hash", "cs4": rec["prev_hash"],
    }
    return f"CEF:0|{header}|" + " ".join(f"{k}={cef_extension(v)}" for k, v in ext.items())


def _epoch_ms(iso: str) -> str:
    try:
        return str(int(datetime.fromisoformat(iso).timestamp() * 1000))
    except ValueError:
        return cef_extension(iso)  # a tampered time is exported as it stands
