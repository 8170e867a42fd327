"""One line per setting of :data:`multiq.config.DEFAULTS`, for the settings reference.

The ``multiq_settings`` extension renders the defaults table with these lines and fails the
build when a setting has no line here, or when a line names a setting that does not exist.
"""
from __future__ import annotations

DESCRIPTIONS = {
    "accept_content": "Serializers a worker accepts in messages. Others go to the dead-letter "
                      "stream. Add ``pickle`` here only if you trust every sender.",
    "beat_max_loop_interval": "Longest time in seconds beat sleeps between two looks at its "
                              "schedule (``beat --max-interval``).",
    "beat_schedule": "The periodic tasks: a dict of name to ``task``, ``schedule``, ``args``, "
                     "``kwargs`` and ``options``.",
    "beat_scheduler": "Where beat reads its entries: empty for the table in Redis, "
                      "``\"django\"`` for the Django models (``beat -S``).",
    "broker_connection_max_retries": "How many times a worker tries to reach Redis at start "
                                     "before it gives up.",
    "broker_connection_retry": "Kept for Celery configuration files; a running worker always "
                               "reconnects when Redis comes back.",
    "broker_connection_retry_on_startup": "Whether a worker waits for Redis at start "
                                          "(retrying) instead of stopping at once.",
    "broker_connection_timeout": "Seconds to wait for a connection to Redis (applied when "
                                 "set).",
    "broker_pool_acquire_timeout": "Seconds a sender waits for a free connection when the pool "
                                   "is full; empty: wait as long as it takes.",
    "broker_pool_limit": "Most connections one client keeps to the broker.",
    "broker_transport_options": "Options of the Redis transport: ``queue_order_strategy``, "
                                "``max_deliveries``, ``reject_backoff``, ``wait_replicas``, "
                                "``master_name``, ``cluster``...",
    "broker_url": "The broker's URL: ``redis://``, ``rediss://`` (TLS), ``unix://``, "
                  "``redis+sentinel://`` or ``redis+cluster://``.",
    "broker_use_ssl": "TLS options for the broker connection (a dict of ``ssl_*`` options), "
                      "or ``True``.",
    "control_queue_expires": "Seconds a remote-control reply may take at most.",
    "enable_utc": "Dates in messages are in UTC.",
    "imports": "Modules the worker imports at start, so their tasks are registered.",
    "include": "Like ``imports``; also given as ``MultiQ(include=[...])``.",
    "redis_backend_use_ssl": "TLS options for the result backend connection.",
    "redis_max_connections": "Most connections the result backend keeps.",
    "redis_retry_on_timeout": "Retry a result backend command once after a socket timeout.",
    "redis_socket_connect_timeout": "Seconds to wait for a result backend connection.",
    "redis_socket_keepalive": "Turn on TCP keepalive on result backend connections.",
    "redis_socket_timeout": "Seconds a result backend command may take.",
    "result_accept_content": "Kept for Celery configuration files: results are JSON "
                             "documents.",
    "result_backend": "Where results are stored: a Redis URL, like ``broker_url``. Empty: no "
                      "results are kept.",
    "result_backend_transport_options": "Options of the result backend, such as "
                                        "``wait_replicas`` and ``wait_timeout``.",
    "result_compression": "Kept for Celery configuration files: results are JSON documents.",
    "result_expires": "Seconds a result is kept in Redis (default: one day).",
    "result_extended": "Also store the task's name, args, kwargs, worker, retries and queue "
                       "with its result.",
    "result_serializer": "Kept for Celery configuration files: results are JSON documents.",
    "task_acks_late": "Acknowledge a task after it ran, not when it starts: an unfinished task "
                      "runs again after a crash.",
    "task_always_eager": "Run tasks in the calling process at once (for tests without a "
                         "worker).",
    "task_annotations": "Options to set on tasks by name, as in Celery (e.g. ``rate_limit``).",
    "task_compression": "Compress task messages: ``gzip``, ``bzip2``, ``zlib``, ``lzma``...",
    "task_create_missing_queues": "Kept for Celery configuration files: a queue exists as "
                                  "soon as something uses it.",
    "task_default_priority": "Priority of a message sent without one (0-9, 9 runs first).",
    "task_default_queue": "The queue of a task that names none.",
    "task_default_rate_limit": "Rate limit of every task that has none (``10/s``, ``100/m``).",
    "task_eager_propagates": "With ``task_always_eager``: raise a task's exception in the "
                             "caller.",
    "task_ignore_result": "Store no results unless a task asks for them.",
    "task_max_deliveries": "Kept for configuration files; the limit in force is the transport "
                           "option ``max_deliveries`` (deliveries before a message is "
                           "dead-lettered).",
    "task_message_max_bytes": "Largest message a sender sends and a worker runs; a larger "
                              "one is refused or dead-lettered.",
    "task_publish_retry": "Retry a send when Redis cannot be reached.",
    "task_publish_retry_policy": "How sends are retried: ``max_retries``, ``interval_start``, "
                                 "``interval_step``, ``interval_max``.",
    "task_queues": "The queues a worker without ``-Q`` consumes (names, or kombu Queues).",
    "task_reject_on_worker_lost": "With ``task_acks_late``: a task whose pool process died "
                                  "runs again instead of failing with ``WorkerLostError``.",
    "task_routes": "Which queue each task goes to: a dict of name or pattern to options, or "
                   "a router function.",
    "task_serializer": "Serializer of task messages: ``json``, ``msgpack`` or ``pickle``.",
    "task_soft_time_limit": "Seconds after which ``SoftTimeLimitExceeded`` is raised in a "
                            "task.",
    "task_store_eager_result": "With ``task_always_eager``: also store the result in the "
                               "backend.",
    "task_time_limit": "Seconds after which a running task is killed (FAILURE with "
                       "``TimeLimitExceeded``).",
    "task_send_sent_event": "Write a ``task-sent`` event for each send.",
    "task_track_started": "Store the ``STARTED`` state when a task starts.",
    "timezone": "Time zone of crontab schedules and of dates shown to people.",
    "worker_concurrency": "Pool size (``-c``); empty: the number of CPUs.",
    "worker_heartbeat_interval": "Seconds between two heartbeats of a node in Redis.",
    "worker_hostname": "The node's name (``-n``), such as ``w1@%h``.",
    "worker_log_format": "Log line format of the worker.",
    "dashboard_history_max_tasks": "Most tasks the dashboard's history keeps; the oldest "
    "leave first.",
    "dashboard_history_max_age": "Seconds a task stays in the dashboard's history.",
    "worker_metrics": "Count task outcomes, run times and queue waits in Redis for "
    "Prometheus (``multiq metrics``); ``--without-metrics`` turns it off for one node.",
    "worker_lost_timeout": "Seconds without a heartbeat after which a node is dead and its "
                           "tasks go to other nodes.",
    "worker_max_memory_per_child": "KiB of resident memory after which a pool process is "
                                   "replaced.",
    "worker_max_tasks_per_child": "Tasks after which a pool process is replaced.",
    "worker_pool": "Pool type: ``prefork``, ``solo``, ``threads``, ``gevent``, ``eventlet``, "
                   "``asyncio``.",
    "worker_prefetch_multiplier": "Messages a node holds per pool slot (concurrency times "
                                  "this).",
    "worker_redirect_stdouts": "Send what tasks print to the log (when the worker logs to a "
                               "file or runs detached).",
    "worker_redirect_stdouts_level": "Log level of what tasks print.",
    "worker_revoke_expires": "Seconds a revoke is kept in Redis.",
    "worker_send_task_events": "Write task events (``worker -E``).",
    "worker_soft_shutdown_timeout": "Seconds a warm shutdown waits for running tasks before "
                                    "it turns cold; 0: it waits for them.",
    "worker_task_log_format": "Log line format inside a task (with its name and id).",
}
