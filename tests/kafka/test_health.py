"""What a running worker reports about itself (``/health``, ``/metrics``), on a real broker."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from stream.dev.events import user_events

pytestmark = pytest.mark.kafka


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_the_lag_a_worker_reports_is_what_it_has_not_applied(
    make_settings, make_worker, make_producer
):
    env, settings = make_settings()
    base = f"http://127.0.0.1:{env['INTEREST_WEB_PORT']}"
    events = user_events("lagging-user", ["shoes"] * 60, time.time() - 120, 1.0, "view")
    with make_worker(env):
        with make_producer(settings) as producer:
            producer.send_many(events)
        deadline = time.monotonic() + 30
        metrics = _get(base + "/metrics")
        while _metric(metrics, "interest_events_applied_total") < len(events):
            assert time.monotonic() < deadline, "the worker did not apply the events"
            time.sleep(0.2)
            metrics = _get(base + "/metrics")
        metrics = _get(base + "/metrics")
        health = json.loads(_get(base + "/health"))

    lags = [line for line in metrics.splitlines() if line.startswith("interest_consumer_lag{")]
    assert len(lags) == settings.partitions  # every events partition, its end known
    assert _metric(metrics, "interest_consumer_lag{") == 0  # not the partition's size
    assert health["consumer_lag"] == 0
