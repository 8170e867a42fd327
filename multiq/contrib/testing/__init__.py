"""What multiq's pytest fixtures (:mod:`multiq.contrib.pytest`) are made of, usable without
pytest: a private redis-server, an app pointed at it, a worker node in a thread."""
