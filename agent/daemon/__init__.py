"""The daemon: sources in, scheduled jobs, the flush that decides, and systemd integration."""
