"""The composition root: one catalogue rule for every decision, reloaded when a playbook file changes."""

from __future__ import annotations

from pathlib import Path

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.store.schema import open_store
from watchstander.playbooks.catalogue import library_dir


def test_catalogue_is_cached_until_a_playbook_file_changes(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    """Unchanged files give the same catalogue object; an edited or new file is seen by the next call."""
    site = tmp_path / "site"
    site.mkdir()
    source = library_dir() / "notify-webhook.yaml"
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}, "playbooks": {"dirs": [str(site)]}})
    store = open_store(cfg.store.resolved_url())
    app = App(cfg, store, clock)
    try:
        first = app.catalogue()
        assert app.catalogue() is first
        text = source.read_text(encoding="utf-8").replace("id: notify-webhook", "id: site-notify", 1)
        (site / "site-notify.yaml").write_text(text, encoding="utf-8")
        second = app.catalogue()
        assert second is not first and "site-notify" in second
        assert app.review_queue() is not None and "site-notify" in app.guard().catalogue
    finally:
        app.close()
        store.close()
