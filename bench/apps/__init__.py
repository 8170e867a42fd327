"""The benchmark task (``noop(i)`` returning ``i``) for each system, one module per system.

Connection URLs come from the environment (``BENCH_BROKER_URL``, ``BENCH_BACKEND_URL``,
``BENCH_COUNTER_URL``), set by the bench for its worker and client processes.
"""
