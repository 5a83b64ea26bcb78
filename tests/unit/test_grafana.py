"""The compose file's Prometheus and Grafana: the dashboard queries only metrics the worker
exports, Prometheus scrapes the worker's /metrics, Grafana provisions both."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from stream.app import create_app
from stream.scoring import ScorerStats
from stream.settings import Settings

pytestmark = pytest.mark.unit
DOCKER = Path(__file__).resolve().parents[2] / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "interest-tracker.json"
PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "max", "min", "avg", "count", "by", "without",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "histogram_quantile", "topk", "bottomk", "delta", "deriv", "clamp_min", "abs", "time",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (identifiers that are not functions,
    keywords, label names or grouping labels).

    >>> sorted(metric_names('sum by (reason) (rate(a_total{job="x"}[1m])) / b > 0'))
    ['a_total', 'b']
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = m.group(0)
        following = expr[m.end() :].lstrip()[:1]
        if word not in PROMQL_WORDS and following != "(":
            names.add(word)
    return names


def exported_names(text: str) -> set[str]:
    """Every metric family and sample name in a Prometheus exposition text."""
    names = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    names |= {
        re.match(r"[^{\s]+", line).group(0) for line in text.splitlines() if line[:1] not in "#"
    }
    return names - {""}


def worker_exposition() -> str:
    """/metrics of a test pipeline holding a user, a dead letter and a sequence scorer."""
    _, pipe = create_app(Settings(bootstrap="127.0.0.1:1", app_id="grafana-test"))
    pipe.counters.events, pipe.counters.dlq["late"] = 5, 1

    class Scorer:
        version = "ckpt"
        stats = ScorerStats(batches=2, users_scored=9, last_batch_size=4, total_ms=30.0)

    pipe.scorer = Scorer()
    return pipe.dashboard.metrics()


def dashboard_queries() -> dict[str, str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {f"{p['title']}/{t['refId']}": t["expr"] for p in panels for t in p["targets"]}


def test_every_metric_the_dashboard_queries_is_one_the_worker_exports():
    exported = exported_names(worker_exposition())
    queried = {name for expr in dashboard_queries().values() for name in metric_names(expr)}
    assert queried - exported == set()
    # the panels the operators asked for, by the metric each one needs
    for needed in (
        "interest_events_total",
        "interest_consumer_lag",
        "interest_dlq_total",
        "interest_snapshots_total",
        "interest_scorer_batches_total",
        "process_resident_memory_bytes",
        "interest_main_thread_cpu_seconds_total",
    ):
        assert needed in queried


def test_the_worker_exports_its_resident_memory():
    text = worker_exposition()
    rss = re.search(r"^process_resident_memory_bytes (\d+)$", text, re.M)
    assert rss and 10 * 2**20 < int(rss.group(1)) < 64 * 2**30


def test_the_worker_exports_its_main_threads_time_on_and_waiting_for_a_core():
    def seconds(text: str, name: str) -> float:
        found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
        assert found, name
        return float(found.group(1))

    before = worker_exposition()
    spent = time.thread_time()
    while time.thread_time() - spent < 0.3:  # this test runs in the main thread: its work
        pass
    after = worker_exposition()
    ran = [seconds(t, "interest_main_thread_cpu_seconds_total") for t in (before, after)]
    waited = [seconds(t, "interest_main_thread_wait_seconds_total") for t in (before, after)]
    assert ran[1] - ran[0] >= 0.25
    assert 0.0 <= waited[0] <= waited[1]


def test_the_metric_name_extraction_catches_an_unknown_metric():
    exported = exported_names(worker_exposition())
    assert metric_names("sum(rate(interest_nonexistent_total[5m]))") - exported == {
        "interest_nonexistent_total"
    }


def test_panels_use_the_provisioned_prometheus_and_have_unique_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 6
    assert all(t["datasource"]["uid"] == uid for p in panels for t in p["targets"])
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_runs_prometheus_on_the_worker_and_grafana_on_prometheus():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    scrape = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    job = scrape["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["worker:6066"]
    assert "6066:6066" in services["worker"]["ports"][0]
    assert services["grafana"]["depends_on"] == ["prometheus"]
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            assert (DOCKER / volume.split(":")[0]).exists(), volume
    provider = yaml.safe_load(
        (DOCKER / "grafana/provisioning/dashboards/interest-tracker.yaml").read_text()
    )
    mounted = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounted["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
