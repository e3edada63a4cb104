"""Writes Zeek logs as Zeek's ASCII writer does (TSV with headers) and as its JSON writer does, for tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

CONN_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents"]
CONN_TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count", "set[string]"]
DNS_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "trans_id", "rtt", "query", "qclass", "qclass_name", "qtype", "qtype_name", "rcode", "rcode_name", "AA", "TC", "RD", "RA", "Z", "answers", "TTLs", "rejected"]
DNS_TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "count", "interval", "string", "count", "string", "count", "string", "count", "string", "bool", "bool", "bool", "bool", "count", "vector[string]", "vector[interval]", "bool"]
SSH_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version", "auth_success", "auth_attempts", "direction", "client", "server"]
SSH_TYPES = ["time", "string", "addr", "port", "addr", "port", "count", "bool", "count", "enum", "string", "string"]
NOTICE_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "note", "msg", "sub", "src", "dst", "p", "n", "actions"]
NOTICE_TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "enum", "string", "string", "addr", "addr", "port", "count", "set[enum]"]
WEIRD_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "name", "addl", "notice", "peer", "source"]
WEIRD_TYPES = ["time", "string", "addr", "port", "addr", "port", "string", "string", "bool", "string", "string"]

LAYOUTS = {
    "conn": (CONN_FIELDS, CONN_TYPES), "dns": (DNS_FIELDS, DNS_TYPES), "ssh": (SSH_FIELDS, SSH_TYPES),
    "notice": (NOTICE_FIELDS, NOTICE_TYPES), "weird": (WEIRD_FIELDS, WEIRD_TYPES),
}


def escape(text: str) -> bytes:
    """A string value as Zeek writes it: bytes it would not print as they are (and the separator) as \\xHH."""
    out = bytearray()
    for b in text.encode("utf-8"):
        out += f"\\x{b:02x}".encode() if b < 0x21 or b > 0x7e or b in b"\\," else bytes((b,))
    raw = bytes(out)
    return b"\\x" + raw[:1].hex().encode() + raw[1:] if raw in (b"-", b"(empty)") else raw


def _tsv_value(value: Any) -> bytes:
    if value is None:
        return b"-"
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, float):
        return f"{value:.6f}".encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, (list, tuple)):
        return b",".join(escape(str(v)) for v in value) if value else b"(empty)"
    return escape(str(value))


def tsv_log(path: str, rows: Sequence[dict[str, Any]]) -> bytes:
    """A whole TSV log, with the header lines Zeek writes, for the layout of `path`."""
    fields, types = LAYOUTS[path]
    head = [b"#separator \\x09", b"#set_separator\t,", b"#empty_field\t(empty)", b"#unset_field\t-",
            f"#path\t{path}".encode(), b"#open\t2026-01-01-00-00-00", ("#fields\t" + "\t".join(fields)).encode(),
            ("#types\t" + "\t".join(types)).encode()]
    body = [b"\t".join(_tsv_value(row.get(f)) for f in fields) for row in rows]
    return b"\n".join([*head, *body, b"#close\t2026-01-01-01-00-00"]) + b"\n"


def json_log(rows: Sequence[dict[str, Any]]) -> bytes:
    """The same rows as Zeek's JSON writer: one object per line, unset fields left out."""
    return b"".join(json.dumps({k: v for k, v in row.items() if v is not None}).encode() + b"\n" for row in rows)
