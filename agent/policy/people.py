"""Who is one person: the identities a site says belong together, so two doors do not make two approvers.

An operator may approve on the command line (as `uid:1001:alice`, through the control socket) and in
the web console (as `console:1234567890@mil`, from a CAC). Without `[policy.people]` those are two
principals; listed under one name they are one person to the review queue's two-person rule and its
requester check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..store.approvals import person_of


def _key(identity: str) -> str:
    # Certificate principals are matched without regard to case (the console does so too).
    return identity.lower() if identity.startswith("console:") else person_of(identity)


class People:
    """Maps a principal to the person it stands for: `person:NAME` when listed, else `person_of(principal)`."""

    def __init__(self, people: Mapping[str, Sequence[str]] | None = None) -> None:
        self._by_identity = {_key(identity): f"person:{name}"
                             for name, identities in (people or {}).items() for identity in identities}

    def __call__(self, principal: str) -> str:
        """The person `principal` stands for."""
        return self._by_identity.get(_key(principal), person_of(principal))
