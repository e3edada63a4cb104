"""Processes starting at once on one node share one signing key: none ever reads a key file still being written."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

from watchstander.agent.store.seal_keys import key_id, load_or_create_signing_key, write_public_key


def _start(folder: str, out: Any) -> None:
    try:
        key = load_or_create_signing_key(Path(folder) / "audit-seal.key")
        write_public_key(key, Path(folder) / "audit-seal.pub")
        out.put(key_id(key.public_key()))
    except Exception as exc:  # noqa: BLE001 -- reported to the test, which fails on it
        out.put(f"error: {exc}")


def test_four_processes_creating_the_key_at_once_agree_on_one(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    for round_ in range(15):
        folder = tmp_path / str(round_)
        folder.mkdir()
        out = ctx.Queue()
        procs = [ctx.Process(target=_start, args=(str(folder), out)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        ids = {out.get(timeout=5) for _ in procs}
        assert len(ids) == 1 and not next(iter(ids)).startswith("error"), ids
        assert sorted(p.name for p in folder.iterdir()) == ["audit-seal.key", "audit-seal.pub"]  # no temp left
        assert (folder / "audit-seal.key").stat().st_mode & 0o777 == 0o600
