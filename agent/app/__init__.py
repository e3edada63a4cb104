"""The application floor: the one composition root and the use cases (replay, decide, evidence)."""
