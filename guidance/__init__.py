"""Guidance: order catalogues, the deadline tracker, the extractor and report writers (imports nothing of the agent)."""
