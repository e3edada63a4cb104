"""`watchstander store migrate --to URL`: the demo's store moves without losing a row, and the chain verifies there."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select

from watchstander.agent.cli import main as cli
from watchstander.agent.store.engine import Store
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


def _counts(store: Store) -> dict[str, int]:
    meta = MetaData()
    meta.reflect(store.engine)
    with store.engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in meta.sorted_tables if t.name != "schema_versions"}


def _demo_store(tmp_path: Path) -> Path:
    """Run the demo; a config whose store is the demo's own (demo-out/watchstander.db)."""
    assert cli.main(["demo", "--out", str(tmp_path / "demo-out")]) == 0
    config = tmp_path / "w.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "demo-out" / "watchstander.db"}"\n')
    return config


@pytest.mark.postgres
def test_the_demo_store_moves_into_postgresql_row_for_row(tmp_path: Path, postgres_url: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = _demo_store(tmp_path)
    capsys.readouterr()
    assert cli.main(["--config", str(config), "store", "migrate", "--to", postgres_url]) == 0
    out = capsys.readouterr()
    assert "audit chain on the target: ok" in out.out and "incidents" in out.err
    source, target = open_store(f"sqlite:///{tmp_path / 'demo-out' / 'watchstander.db'}"), open_store(postgres_url)
    try:
        before, after = _counts(source), _counts(target)
        assert before == after and before["incidents"] > 0 and before["audit_log"] > 0
        assert cli.main(["--config", str(config), "store", "migrate", "--to", postgres_url]) == 4  # not empty now (exit: input)
        assert "not empty" in capsys.readouterr().err
        pg_config = tmp_path / "pg.toml"
        pg_config.write_text(f'[store]\nurl = "{postgres_url}"\n')
        assert cli.main(["--config", str(pg_config), "audit", "verify", "--local"]) == 0
        # New rows on the target get ids above the copied ones (the serial sequences moved on).
        telemetry = sorted(str(p) for p in (tmp_path / "demo-out" / "telemetry").iterdir())
        assert cli.main(["--config", str(pg_config), "replay", *telemetry]) == 0
        notes = MetaData()
        notes.reflect(target.engine, only=["incidents"])
        incidents = notes.tables["incidents"]
        with target.begin() as conn:
            top = conn.execute(select(func.max(incidents.c.id))).scalar_one()
            row = dict(conn.execute(select(incidents).where(incidents.c.id == top)).one()._mapping)
            row.pop("id")
            new_id = conn.execute(incidents.insert().values(**{**row, "fingerprint": "f" * 32})).inserted_primary_key
        assert new_id is not None and new_id[0] == top + 1
    finally:
        source.close()
        target.close()


def test_migrate_refuses_a_bad_url_and_the_store_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "w.toml"
    db = tmp_path / "w.db"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n')
    assert cli.main(["--config", str(config), "store", "migrate", "--to", "not a url"]) == 4
    assert cli.main(["--config", str(config), "store", "migrate", "--to", f"sqlite:///{db}"]) == 4
    assert "itself" in capsys.readouterr().err


def test_migrate_between_two_sqlite_files(tmp_path: Path) -> None:
    config = _demo_store(tmp_path)
    target = tmp_path / "copy" / "w.db"
    assert cli.main(["--config", str(config), "store", "migrate", "--to", f"sqlite:///{target}"]) == 0
    a, b = open_store(f"sqlite:///{tmp_path / 'demo-out' / 'watchstander.db'}"), open_store(f"sqlite:///{target}")
    try:
        assert _counts(a) == _counts(b)
    finally:
        a.close()
        b.close()
