"""Detection: the event pipeline, the detectors, and the correlator that groups findings into incidents."""
