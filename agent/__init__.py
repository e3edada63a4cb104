"""The agent: the daemon that wires connectors, detectors, triage, review and guidance together."""
