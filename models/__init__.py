"""Reference networks and trainable models."""
