"""Execution pools: solo, threads (and prefork)."""
