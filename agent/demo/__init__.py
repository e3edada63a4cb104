"""The demo's own telemetry and configuration, generated on the spot."""
