"""The sudo rule SSH collection needs on a Linux device, installed for a test account and removed after.

docs/playbooks.md's provisioning (and `support.firewall.SUDOERS_TEMPLATE`) allows only the
playbooks' own nft commands; reading the whole ruleset for drift needs one more read-only rule:

    ACCOUNT ALL=(root) NOPASSWD: /usr/sbin/nft -j list ruleset

sudo matches the arguments exactly, so `nft -j list ruleset` and nothing else is admitted.
"""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SUDOERS_D = Path("/etc/sudoers.d")
PREFIX = "ws-collect-"
COLLECTION_SUDOERS = "# Watchstander: SSH collection (configuration drift)\n" \
                     "{user} ALL=(root) NOPASSWD: /usr/sbin/nft -j list ruleset\n"


def remove_leftovers() -> None:
    """Remove rules an earlier, killed run left for accounts that no longer exist."""
    for path in SUDOERS_D.glob(f"{PREFIX}*"):
        try:
            pwd.getpwnam(path.name.removeprefix(PREFIX))
        except KeyError:
            with suppress(FileNotFoundError):
                path.unlink()


@contextmanager
def collection_sudo_rule(user: str) -> Iterator[Path]:
    """Install the collection rule for `user` (checked by `visudo -cf`) and remove it on exit."""
    remove_leftovers()
    target = SUDOERS_D / f"{PREFIX}{user}"
    # sudo ignores files in sudoers.d whose name contains a dot: safe to write, check, rename.
    staging = SUDOERS_D / f".{PREFIX}{user}.tmp"
    staging.write_text(COLLECTION_SUDOERS.format(user=user), encoding="utf-8")
    staging.chmod(0o440)
    try:
        subprocess.run(["visudo", "-c", "-q", "-f", str(staging)], check=True, capture_output=True, timeout=15)
        staging.rename(target)
        yield target
    finally:
        for path in (staging, target):
            with suppress(FileNotFoundError):
                path.unlink()
