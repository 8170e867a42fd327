"""The worker node.

A message's way through a node, one direction only::

    Redis stream --fetch--> Consumer --Delivery--> Executor.prepare --Request--> Pool
        --> Executor.execute (trace: the task's own code) --Outcome--> Committer
        --items (multiq.worker.items)--> Recorder (commands) --> Outbox --> Redis

The values that travel (``Request``, ``Outcome``, the commit items) are in ``items.py``, a
leaf module. From the consumer's dispatch to the task's function there are four calls in
four modules on every pool: ``Consumer._dispatch`` → ``Pool.apply`` → ``Executor.execute``
→ ``trace`` → the function (the threads pool's own threads start at ``Executor.execute``).

- ``consumer.py`` fetches (XREADGROUP through one Lua script for all queues and bands),
  keeps the prefetched requests and hands them to the pool as it has room.
- ``execute.py`` decodes and checks a delivery into a ``Request`` (refusing, with a
  dead letter, what cannot run), admits it (revoked, expired, rate limit, start marker)
  and runs it through ``multiq.trace``; a chord body gets its header's values here.
- ``committer.py`` gathers what happened (started, done, redelivered, revoked, refused,
  events) and writes it in batches: results first, then acknowledgements in one
  transaction; a solo node's batch rides on its next fetch. ``record.py`` plans a
  batch's commands, ``flow.py`` its chord counts and failed chain steps, ``outbox.py``
  sends them in as few exchanges as the servers allow.
- ``components.py``: the node's background threads; ``config.py`` the node's settings,
  one frozen ``NodeConfig``; ``worker.py`` builds the parts in order, each given what it
  needs when it is made, handles signals and shuts down; ``node.py`` is the node as
  remote-control commands see it (:class:`multiq.control.node.Node`).

Threads and processes, and what each owns:

- solo: the main thread consumes, runs and commits (riding on its fetches);
- threads: the main thread consumes, ``pool-<i>`` threads run, the ``committer`` thread
  writes (or the finishing thread, when it finds the writer idle);
- prefork: the main process does not consume. Each child (``multiq.pools.selffed``) is a
  consumer of its own, as a solo node, with a ``pipe`` thread for its node's commands; the
  main process's ``pool-supervisor`` thread watches the children (deaths, hard time
  limits, terminate, rebalancing) through their pipes and shared-memory slots;
- every node: ``heartbeat`` (its liveness key, and its children's), ``revokes`` (the
  revoked set and channel), ``promoter`` (due countdowns and retries into their streams),
  ``recovery`` (what dead nodes held), ``control`` (remote-control commands),
  ``watchdog`` (systemd's, when asked for) and the signal watcher.
"""
