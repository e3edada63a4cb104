"""Playbooks: the schema, the action registry, the runner and the shipped library of approved playbooks."""
