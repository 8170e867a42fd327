"""Remote control of worker nodes."""
