"""Telemetry sources and device actions: bytes in, normalized Events out (no decisions)."""
