"""Triage: the deterministic baseline analyst and the AI model that refines it."""
