"""Side-by-side benchmark of multiq against Celery 5, RQ and Dramatiq on one private Redis.

``python -m bench`` (or ``bin/bench``) starts its own ``redis-server``, runs the same no-op
task through each installed system and prints a table of medians with multiq/peer ratios;
the full record goes to a JSON file. See ``python -m bench --help``.
"""
from __future__ import annotations
