"""The Faust app's configuration from the worker's settings (``stream.app.create_app``)."""

from __future__ import annotations

from typing import Any

from stream.batch_consumer import SCHEME
from stream.settings import Settings

# Per partition's RocksDB. Faust's defaults (3 × 64 MiB memtables, a 2 GiB block cache) let
# resident memory grow with the state for gigabytes; these keep it flat.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 << 20,
}


def faust_config(settings: Settings) -> dict[str, Any]:
    """The keywords of ``faust.App`` for ``settings``: broker (through the batch consumer's
    transport), store, web, producer batching, commit interval and group membership."""
    broker = settings.broker_url if settings.bootstrap else "kafka://127.0.0.1:9092"
    return dict(
        broker=broker,
        broker_consumer=broker.replace("kafka://", f"{SCHEME}://", 1),
        store=settings.store,
        datadir=settings.state_dir,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # A metadata answer that missed a subscribed topic (a broker under load) is kept
        # until the next refresh, and the group is assigned without it meanwhile: 30 s,
        # not aiokafka's 5 min (a refresh is one small request).
        consumer_metadata_max_age_ms=30_000,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        producer_max_request_size=4 << 20,
        broker_max_poll_records=settings.batch,
        stream_buffer_maxsize=8192,
        broker_commit_interval=settings.commit_interval_s,
        table_cleanup_interval=30.0,
        autodiscover=False,
        # Faust's generic /table and /router views would expose raw per-user records.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=settings.security.faust_credentials(),
        **settings.group_config(),  # failover: session, heartbeat, rebalance, standbys
    )
