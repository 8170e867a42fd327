"""``multiq dashboard``: a web view of the nodes, queues, tasks, dead letters and beat.

Everything it shows is read from Redis; the task history is an index in Redis
(:mod:`multiq.dashboard.history`) fed from the events stream by
:mod:`multiq.dashboard.feeder`, so it survives a restart of the dashboard. Needs the
``dashboard`` extra (Starlette, uvicorn, Jinja2); nothing here is imported by ``import
multiq`` or by a worker node.
"""
