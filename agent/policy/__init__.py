"""Policy: the guard every recommended action passes, and the review queue where people decide."""
