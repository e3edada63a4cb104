"""The local control socket: authenticated operator requests to the daemon that owns the store.

    errors.py          the error tree and the codes that cross the socket
    identity.py        SO_PEERCRED -> user, groups -> roles; the Identity every handler receives
    protocol.py        one JSON object per line, both directions
    registry.py        MethodRegistry: dotted name -> (required role, handler); duplicates raise
    server.py          ControlServer (asyncio, Unix stream socket), the built-in ping and whoami
    client.py          ControlClient and via_daemon_or_local (daemon mode, else in-process)
    review_methods.py  suggestions.* over the socket, calling the review queue as the caller
    audit_methods.py   audit.verify and audit.records for the compliance role
    playbook_methods.py  playbooks.approve (admin; two people for high risk)
    wiring.py          the registry and server the daemon runs, built from the app's composition root

The [control] section's model is `agent/config/control.py`; `watchstander control ping|whoami` is
`agent/cli/control.py`.
"""
