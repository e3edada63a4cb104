"""The local control socket: authenticated operator requests to the daemon that owns the store."""
