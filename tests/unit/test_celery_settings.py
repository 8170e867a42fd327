"""Celery 5's setting names: each one honoured, or accepted with one warning that says why it
has no effect here; and the connection settings that reach the Redis clients."""
from __future__ import annotations

import types
import warnings

import pytest
import redis

from multiq import MultiQ
from multiq.config import (
    CELERY_SETTINGS,
    DEFAULTS,
    HONOURED,
    IgnoredSettingWarning,
    Settings,
    UnknownSettingWarning,
    load_object,
)
from multiq.connopts import backend_options, broker_options
from multiq.redisconn import connect
from multiq.worker.config import NodeConfig

# Every setting of Celery 5.7 (celery.app.defaults), copied here so that a name the table
# forgets fails this test rather than warning as unknown.
_NAMES = """
accept_content result_accept_content enable_utc imports include timezone
beat_enable_remote_control beat_remote_control_max_tick_age beat_max_loop_interval
beat_schedule beat_scheduler beat_schedule_filename beat_sync_every
beat_cron_starting_deadline broker_url broker_read_url broker_write_url broker_transport
broker_transport_options broker_connection_timeout broker_connection_retry
broker_connection_retry_on_startup broker_connection_max_retries broker_channel_error_retry
broker_failover_strategy broker_heartbeat broker_heartbeat_checkrate broker_login_method
broker_native_delayed_delivery_queue_type broker_pool_limit broker_pool_acquire_timeout
broker_use_ssl broker_host broker_port broker_user broker_password broker_vhost
cache_backend cache_backend_options cassandra_entry_ttl cassandra_keyspace cassandra_port
cassandra_read_consistency cassandra_servers cassandra_bundle_path cassandra_table
cassandra_write_consistency cassandra_auth_provider cassandra_auth_kwargs cassandra_options
s3_access_key_id s3_secret_access_key s3_bucket s3_base_path s3_endpoint_url s3_region
azureblockblob_container_name azureblockblob_retry_initial_backoff_sec
azureblockblob_retry_increment_base azureblockblob_retry_max_attempts
azureblockblob_base_path azureblockblob_connection_timeout azureblockblob_read_timeout
gcs_bucket gcs_project gcs_base_path gcs_ttl control_queue_ttl control_queue_expires
control_queue_exclusive control_queue_durable control_exchange couchbase_backend_settings
arangodb_backend_settings mongodb_backend_settings cosmosdbsql_database_name
cosmosdbsql_collection_name cosmosdbsql_consistency_level cosmosdbsql_max_retry_attempts
cosmosdbsql_max_retry_wait_time event_queue_expires event_queue_ttl event_queue_prefix
event_queue_exclusive event_queue_durable event_serializer event_exchange
redis_backend_use_ssl redis_db redis_host redis_max_connections redis_username
redis_password redis_port redis_socket_timeout redis_socket_connect_timeout
redis_retry_on_timeout redis_socket_keepalive result_backend result_cache_max
result_compression result_exchange result_exchange_type result_expires result_chord_expires
result_failure_expires result_persistent result_extended result_serializer
result_backend_transport_options result_chord_retry_interval result_chord_join_timeout
result_backend_max_sleep_between_retries_ms result_backend_max_retries
result_backend_base_sleep_between_retries_ms result_backend_always_retry
elasticsearch_retry_on_timeout elasticsearch_max_retries elasticsearch_timeout
elasticsearch_save_meta_as_text security_certificate security_cert_store security_key
security_key_password security_digest database_url database_engine_options
database_engine_callback database_short_lived_sessions database_table_schemas
database_table_names database_create_tables_at_setup task_acks_late
task_acks_on_failure_or_timeout task_acks_on_failure task_acks_on_timeout task_always_eager
task_annotations task_compression task_create_missing_queues task_create_missing_queue_type
task_create_missing_queue_exchange_type task_inherit_parent_priority
task_default_delivery_mode task_default_queue task_default_queue_type task_default_exchange
task_default_exchange_type task_default_routing_key task_default_rate_limit
task_default_priority task_eager_propagates task_ignore_result task_store_eager_result
task_protocol task_publish_retry task_publish_retry_policy task_queues
task_queue_max_priority task_reject_on_worker_lost task_retry_on_worker_lost
task_remote_tracebacks task_repr_maxlevels task_routes task_send_sent_event task_serializer
task_soft_time_limit task_time_limit task_store_errors_even_if_ignored task_track_started
task_allow_error_cb_on_chord_header worker_agent worker_autoscaler
worker_cancel_long_running_tasks_on_connection_loss worker_soft_shutdown_timeout
worker_enable_soft_shutdown_on_idle worker_concurrency worker_consumer worker_direct
worker_disable_rate_limits worker_deduplicate_successful_tasks worker_enable_remote_control
worker_hijack_root_logger worker_log_color worker_log_datefmt worker_log_format
worker_lost_wait worker_max_memory_per_child worker_max_tasks_per_child worker_pool
worker_pool_putlocks worker_pool_restarts worker_pool_start_method worker_proc_alive_timeout
worker_prefetch_multiplier worker_eta_task_limit worker_enable_prefetch_count_reduction
worker_disable_prefetch worker_redirect_stdouts worker_redirect_stdouts_level
worker_send_task_events worker_state_db worker_task_log_datefmt worker_task_log_format
worker_timer worker_timer_precision worker_detect_quorum_queues
"""
CELERY_5_SETTINGS = tuple(_NAMES.split())


def test_every_celery_setting_is_known_or_in_the_table() -> None:
    assert len(CELERY_5_SETTINGS) > 200
    missing = [n for n in CELERY_5_SETTINGS if n not in DEFAULTS and n not in CELERY_SETTINGS]
    assert missing == []


def test_honoured_names_have_defaults_and_the_others_a_reason() -> None:
    for name, verdict in CELERY_SETTINGS.items():
        if verdict == HONOURED:
            assert name in DEFAULTS, name
        else:
            assert len(verdict) > 10, name
    for name in ("broker_pool_acquire_timeout", "broker_pool_limit", "redis_socket_timeout",
                 "redis_max_connections", "broker_connection_timeout", "task_queues"):
        assert CELERY_SETTINGS[name] == HONOURED


def test_no_celery_name_warns_at_its_default() -> None:
    from multiq.celerysettings import CELERY_DEFAULTS

    conf = Settings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf.update({name: default for name, default in CELERY_DEFAULTS.items()})
    assert conf.changes.keys() == CELERY_DEFAULTS.keys()


def test_an_amqp_setting_warns_once_with_its_reason() -> None:
    conf = Settings()
    with pytest.warns(IgnoredSettingWarning, match="'broker_heartbeat' has no effect in "
                      "multiq: AMQP connection heartbeats; .*worker_heartbeat_interval") as rec:
        conf.update(broker_heartbeat=10)
    assert rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf.broker_heartbeat = 30  # once per app and name
    assert conf.broker_heartbeat == 30 and conf.changes["broker_heartbeat"] == 30
    for name, value, match in (
        ("task_default_exchange", "tasks", "AMQP"), ("worker_direct", True, "destination="),
        ("event_queue_ttl", 1.0, "event"), ("result_persistent", True, "AMQP"),
        ("result_chord_join_timeout", 10, "chord"), ("task_remote_tracebacks", True, "text"),
        ("worker_cancel_long_running_tasks_on_connection_loss", True, "heartbeat"),
        ("task_create_missing_queues", False, "created when first used"),
        ("database_url", "sqlite://", "Redis only"),
    ):
        with pytest.warns(IgnoredSettingWarning, match=match):
            conf[name] = value


def test_a_celery_setting_at_celerys_default_is_silent_and_readable() -> None:
    conf = Settings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf.update(task_create_missing_queues=True, worker_direct=False, broker_heartbeat=120,
                    task_default_exchange_type="direct", result_chord_join_timeout=3.0)
    fresh = Settings()
    assert fresh.broker_heartbeat == 120 and fresh["EVENT_QUEUE_PREFIX"] == "celeryev"
    assert fresh.get("worker_direct") is False and fresh.task_queues is None
    assert "broker_heartbeat" not in fresh.table(with_defaults=True)
    with pytest.raises(AttributeError):
        _ = fresh.no_such_setting


def test_unknown_names_that_are_not_celerys_still_warn_as_unknown() -> None:
    with pytest.warns(UnknownSettingWarning) as rec:
        Settings(broker_hearbeat=10)
    assert not isinstance(rec[0].message, IgnoredSettingWarning)
    assert "Unknown setting 'broker_hearbeat'" in str(rec[0].message)


def test_each_app_warns_once() -> None:
    for _ in range(2):
        with pytest.warns(IgnoredSettingWarning):
            app = MultiQ("t", broker="redis://localhost:1/0", set_as_current=False)
            app.conf.task_default_exchange = "x"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            app.conf.task_default_exchange = "y"


def test_upper_case_celery_names_are_read_from_a_module() -> None:
    module = types.ModuleType("celeryconfig")
    module.BROKER_POOL_LIMIT = 3  # type: ignore[attr-defined]
    module.BROKER_HEARTBEAT = 0  # type: ignore[attr-defined]
    module.DEBUG = True  # type: ignore[attr-defined]
    assert load_object(module) == {"broker_pool_limit": 3, "broker_heartbeat": 0}


# -- connection settings -------------------------------------------------------------------


def test_connection_settings_apply_only_once_set() -> None:
    conf = Settings()
    assert broker_options(conf) == {} and backend_options(conf) == {}
    conf.update(broker_connection_timeout=2, broker_pool_limit=7,
                broker_transport_options={"socket_connect_timeout": 1.5},
                redis_socket_timeout=30, redis_max_connections=20, redis_socket_keepalive=False,
                redis_backend_use_ssl={"ssl_cert_reqs": "required", "other": 1})
    assert broker_options(conf) == {"socket_connect_timeout": 1.5, "max_connections": 7,
                                    "pool_timeout": None}  # the transport option wins
    assert broker_options(conf, node=True) == {"socket_connect_timeout": 1.5}
    assert backend_options(conf) == {"socket_timeout": 30, "max_connections": 20,
                                     "socket_keepalive": False, "ssl_cert_reqs": "required"}


def test_pool_acquire_timeout_bounds_the_wait_for_a_connection(redis_url: str) -> None:
    client = connect(redis_url, {"max_connections": 1, "pool_timeout": 0.2})
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool) and pool.timeout == 0.2
    held = pool.get_connection()
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        pool.release(held)
    assert client.ping()
    client.close()


def test_app_broker_takes_the_pool_settings_but_a_node_does_not(redis_url: str) -> None:
    app = MultiQ("t", broker=redis_url, set_as_current=False)
    app.conf.update(broker_pool_limit=2, broker_pool_acquire_timeout=1.5)
    pool = app.broker.client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (2, 1.5)
    app.serve_as_node()
    assert not isinstance(app.broker.client.connection_pool, redis.BlockingConnectionPool)
    app.close()


def test_backend_takes_the_redis_settings(redis_url: str) -> None:
    app = MultiQ("t", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(redis_socket_timeout=12.5, redis_max_connections=9)
    pool = app.backend.client.connection_pool
    assert pool.connection_kwargs["socket_timeout"] == 12.5 and pool.max_connections == 9
    app.close()


def test_a_node_without_queues_consumes_task_queues() -> None:
    class Queue:  # what kombu.Queue looks like here
        def __init__(self, name: str) -> None:
            self.name = name

    app = MultiQ("t", broker="redis://localhost:1/0", set_as_current=False)
    app.conf.task_queues = [Queue("high"), "low"]
    assert NodeConfig.resolve(app).queues == ("high", "low")
    assert NodeConfig.resolve(app, queues=["only"]).queues == ("only",)
    app.conf.task_queues = None
    assert NodeConfig.resolve(app).queues == ("multiq",)
