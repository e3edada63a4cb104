"""Detectors: windowed rules that turn Events into Findings."""
