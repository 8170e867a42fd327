"""Celery 5's setting names that multiq does not take as its own, and what each does here.

:data:`CELERY_SETTINGS` maps each name to :data:`HONOURED` (multiq acts on it: it is in
:data:`multiq.config.DEFAULTS`) or to the reason it has no effect (an AMQP-only setting, a
result store other than Redis, a Celery plug-in class, or what replaces it here). Setting one
of the latter to anything but Celery's default warns once per app with that reason (see
:class:`multiq.config.IgnoredSettingWarning`); reading it gives Celery's default
(:data:`CELERY_DEFAULTS`). Standard library only: :mod:`multiq.config` imports it.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

__all__ = ["CELERY_DEFAULTS", "CELERY_SETTINGS", "HONOURED"]

HONOURED = "honoured"

_AMQP = "an AMQP (RabbitMQ) setting; Redis has no exchanges, bindings or queue arguments"
_EXCHANGE = _AMQP + ": a message goes to its queue's stream (route with task_routes / queue=)"
_EVENTS = ("an AMQP event-queue setting; events go to a Redis stream that trims itself "
           "(`multiq events` reads it)")
_CONTROL = ("an AMQP control-queue setting; control commands and replies go over Redis "
            "pub/sub (control_queue_expires bounds a reply's wait)")
_RESULTS = "results are stored in Redis only (result_backend = redis://...)"
_CHORDS = ("a chord's header results are counted by the worker in Redis, atomically: there "
           "is no join to poll or time out")
_PLUGIN = "a Celery plug-in class; multiq's worker is wired in plain code, not from settings"
_URL = "give the server, user and password in broker_url (redis://user:password@host:port/db)"
_BACKEND_URL = "give the server in result_backend's URL (redis://user:password@host:port/db)"
_SECURITY = "message signing (the auth serializer) is not supported; use TLS (rediss://)"
_BEAT_STATE = "beat keeps its schedule's state in Redis, not in a file"
_UNSUPPORTED = "not supported by multiq"

# name -> (Celery's default, why it has no effect here)
_IGNORED: Dict[str, Tuple[Any, str]] = {
    "beat_enable_remote_control": (False, _UNSUPPORTED + " (beat takes no control commands)"),
    "beat_remote_control_max_tick_age": (None, _UNSUPPORTED),
    "beat_schedule_filename": ("celerybeat-schedule", _BEAT_STATE),
    "beat_sync_every": (0, _BEAT_STATE + ", written as each entry is sent"),
    "beat_cron_starting_deadline": (None, _UNSUPPORTED),
    "broker_read_url": (None, "one Redis (or its Sentinel master) serves reads and writes"),
    "broker_write_url": (None, "one Redis (or its Sentinel master) serves reads and writes"),
    "broker_transport": (None, "the transport is always Redis (see broker_url's scheme)"),
    "broker_channel_error_retry": (False, _AMQP),
    "broker_failover_strategy": (
        None, "failover follows Redis Sentinel (redis+sentinel://) or Cluster"),
    "broker_heartbeat": (
        120, "AMQP connection heartbeats; a node's liveness is worker_heartbeat_interval and "
             "worker_lost_timeout"),
    "broker_heartbeat_checkrate": (3.0, "AMQP connection heartbeats (see broker_heartbeat)"),
    "broker_login_method": (None, _AMQP),
    "broker_native_delayed_delivery_queue_type": (
        "quorum", _AMQP + "; countdown/eta messages wait in a Redis sorted set"),
    "broker_host": (None, _URL),
    "broker_port": (None, _URL),
    "broker_user": (None, _URL),
    "broker_password": (None, _URL),
    "broker_vhost": (None, _URL + "; an AMQP virtual host is a Redis database number"),
    "cache_backend": (None, _RESULTS),
    "cache_backend_options": ({}, _RESULTS),
    "control_queue_ttl": (300.0, _CONTROL),
    "control_queue_exclusive": (True, _CONTROL),
    "control_queue_durable": (False, _CONTROL),
    "control_exchange": ("celery", _CONTROL),
    "couchbase_backend_settings": (None, _RESULTS),
    "arangodb_backend_settings": (None, _RESULTS),
    "mongodb_backend_settings": (None, _RESULTS),
    "event_queue_expires": (60.0, _EVENTS),
    "event_queue_ttl": (5.0, _EVENTS),
    "event_queue_prefix": ("celeryev", _EVENTS),
    "event_queue_exclusive": (True, _EVENTS),
    "event_queue_durable": (False, _EVENTS),
    "event_serializer": ("json", "events are always JSON"),
    "event_exchange": ("celeryev", _EVENTS),
    "redis_db": (None, _BACKEND_URL),
    "redis_host": (None, _BACKEND_URL),
    "redis_username": (None, _BACKEND_URL),
    "redis_password": (None, _BACKEND_URL),
    "redis_port": (None, _BACKEND_URL),
    "result_cache_max": (-1, "results are not cached in the client; each get() reads Redis"),
    "result_exchange": ("celeryresults", _AMQP + " (the rpc:// result backend)"),
    "result_exchange_type": ("direct", _AMQP + " (the rpc:// result backend)"),
    "result_chord_expires": (None, _UNSUPPORTED + "; a chord's state expires with "
                                                 "result_expires"),
    "result_failure_expires": (None, _UNSUPPORTED + "; results expire with result_expires"),
    "result_persistent": (None, _AMQP + " (durable rpc:// results); Redis keeps results "
                                        "until result_expires"),
    "result_chord_retry_interval": (1.0, _CHORDS),
    "result_chord_join_timeout": (3.0, _CHORDS),
    "result_backend_max_sleep_between_retries_ms": (
        10000, "the worker retries result writes while Redis is away, on its own schedule"),
    "result_backend_max_retries": (
        float("inf"), "the worker retries result writes while Redis is away, on its own "
                      "schedule"),
    "result_backend_base_sleep_between_retries_ms": (
        10, "the worker retries result writes while Redis is away, on its own schedule"),
    "result_backend_always_retry": (
        False, "the worker always retries result writes while Redis is away"),
    "security_certificate": (None, _SECURITY),
    "security_cert_store": (None, _SECURITY),
    "security_key": (None, _SECURITY),
    "security_key_password": (None, _SECURITY),
    "security_digest": ("sha256", _SECURITY),
    "task_acks_on_failure_or_timeout": (
        True, _UNSUPPORTED + "; a failed or timed-out task is always acknowledged"),
    "task_acks_on_failure": (None, _UNSUPPORTED + "; a failed task is always acknowledged"),
    "task_acks_on_timeout": (
        None, _UNSUPPORTED + "; a timed-out task is always acknowledged"),
    "task_create_missing_queues": (
        True, "every queue is created when first used (a Redis stream needs no declaring)"),
    "task_create_missing_queue_type": ("classic", _AMQP),
    "task_create_missing_queue_exchange_type": (None, _EXCHANGE),
    "task_inherit_parent_priority": (False, _UNSUPPORTED),
    "task_default_delivery_mode": (
        2, _AMQP + "; every message is as durable as Redis's persistence makes it"),
    "task_default_queue_type": ("classic", _AMQP),
    "task_default_exchange": (None, _EXCHANGE),
    "task_default_exchange_type": ("direct", _EXCHANGE),
    "task_default_routing_key": (None, _EXCHANGE),
    "task_protocol": (2, "multiq's messages have one envelope of their own"),
    "task_queue_max_priority": (
        None, "every queue has priorities 0-9 (a stream per band); nothing to declare"),
    "task_retry_on_worker_lost": (False, _UNSUPPORTED + " (see task_reject_on_worker_lost)"),
    "task_remote_tracebacks": (
        False, _UNSUPPORTED + "; a failed result's traceback is kept as text "
                              "(AsyncResult.traceback)"),
    "task_repr_maxlevels": (3, _UNSUPPORTED),
    "task_store_errors_even_if_ignored": (False, _UNSUPPORTED),
    "task_allow_error_cb_on_chord_header": (False, _UNSUPPORTED),
    "worker_agent": (None, _PLUGIN),
    "worker_autoscaler": ("celery.worker.autoscale:Autoscaler", _PLUGIN),
    "worker_cancel_long_running_tasks_on_connection_loss": (
        False, "a node that loses Redis keeps running its tasks, and another node takes them "
               "over only once the node's heartbeat has expired, so nothing runs twice"),
    "worker_enable_soft_shutdown_on_idle": (False, _UNSUPPORTED),
    "worker_consumer": ("celery.worker.consumer:Consumer", _PLUGIN),
    "worker_direct": (
        False, "AMQP per-node queues; a control command reaches one node by its name "
               "(destination=), and a node can consume its own queue with -Q"),
    "worker_disable_rate_limits": (False, _UNSUPPORTED),
    "worker_deduplicate_successful_tasks": (False, _UNSUPPORTED),
    "worker_enable_remote_control": (True, _UNSUPPORTED + "; every node answers control "
                                                          "commands"),
    "worker_hijack_root_logger": (True, _UNSUPPORTED),
    "worker_log_color": (None, _UNSUPPORTED),
    "worker_log_datefmt": (None, _UNSUPPORTED),
    "worker_lost_wait": (10.0, "see worker_lost_timeout"),
    "worker_pool_putlocks": (True, _PLUGIN),
    "worker_pool_restarts": (False, _UNSUPPORTED + "; pool_restart is not a control command"),
    "worker_pool_start_method": ("fork", _UNSUPPORTED + "; prefork children are forked"),
    "worker_proc_alive_timeout": (4.0, _UNSUPPORTED),
    "worker_eta_task_limit": (
        None, "countdown/eta messages wait in Redis, not in the worker's memory"),
    "worker_enable_prefetch_count_reduction": (True, _AMQP),
    "worker_disable_prefetch": (False, _UNSUPPORTED + "; set worker_prefetch_multiplier=1"),
    "worker_state_db": (None, "revoked ids are kept in Redis, shared by every node"),
    "worker_task_log_datefmt": (None, _UNSUPPORTED),
    "worker_timer": (None, _PLUGIN),
    "worker_timer_precision": (1.0, _PLUGIN),
    "worker_detect_quorum_queues": (True, _AMQP),
}

_STORES = {
    "cassandra": ("entry_ttl", "keyspace", "port", "read_consistency", "servers",
                  "bundle_path", "table", "write_consistency", "auth_provider", "auth_kwargs",
                  "options"),
    "s3": ("access_key_id", "secret_access_key", "bucket", "base_path", "endpoint_url",
           "region"),
    "azureblockblob": ("container_name", "retry_initial_backoff_sec", "retry_increment_base",
                       "retry_max_attempts", "base_path", "connection_timeout",
                       "read_timeout"),
    "gcs": ("bucket", "project", "base_path", "ttl"),
    "cosmosdbsql": ("database_name", "collection_name", "consistency_level",
                    "max_retry_attempts", "max_retry_wait_time"),
    "elasticsearch": ("retry_on_timeout", "max_retries", "timeout", "save_meta_as_text"),
    "database": ("url", "engine_options", "engine_callback", "short_lived_sessions",
                 "table_schemas", "table_names", "create_tables_at_setup"),
}
for _store, _names in _STORES.items():
    for _name in _names:  # (their Celery defaults are not needed: any value warns)
        _IGNORED.setdefault(f"{_store}_{_name}", (None, _RESULTS))

# Celery names multiq acts on that it did not have before; they are in config.DEFAULTS.
_HONOURED_NAMES = (
    "broker_connection_timeout", "broker_pool_acquire_timeout", "broker_pool_limit",
    "broker_use_ssl", "redis_backend_use_ssl", "redis_max_connections",
    "redis_retry_on_timeout", "redis_socket_connect_timeout", "redis_socket_keepalive",
    "redis_socket_timeout", "task_queues",
)

#: Celery's name -> ``"honoured"``, or the reason it has no effect in multiq.
CELERY_SETTINGS: Dict[str, str] = {
    **{name: HONOURED for name in _HONOURED_NAMES},
    **{name: reason for name, (_, reason) in _IGNORED.items()},
}
#: Celery's default of each name that has no effect here (what reading it gives).
CELERY_DEFAULTS: Dict[str, Any] = {name: default for name, (default, _) in _IGNORED.items()}
