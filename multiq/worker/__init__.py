"""The worker node."""
