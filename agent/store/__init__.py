"""The store floor: the engine and its migrations registry, and one module per component's tables."""
