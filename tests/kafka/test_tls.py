"""Real TLS and SASL: a SASL_SSL broker of its own, the worker and the CLI through it, and
one-line, fast failures for a wrong password and an untrusted certificate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.dev.localrun import (
    BrokerError,
    WorkerProcess,
    start_local_broker,
    stop_local_broker,
    worker_env,
)

pytestmark = pytest.mark.kafka
USERS, EVENTS = 40, 400


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """A SASL_SSL broker in its own run dir and ports: (address, client settings)."""
    run_dir = tmp_path_factory.mktemp("kafka-tls")
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir), "KAFKA_LOCAL_SECURITY": "sasl_ssl"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    try:
        address, _ = start_local_broker(env)
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)
    client = dict(
        line.split("=", 1) for line in (run_dir / "client.env").read_text().splitlines() if line
    )
    try:
        yield address, client
    finally:
        stop_local_broker(env)


def _cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _untrusted_ca(tmp_path: Path) -> Path:
    ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=someone else", "-keyout", str(tmp_path / "k.pem"), "-out", str(ca)],
        check=True,
        capture_output=True,
    )
    return ca


def test_tls_sasl_worker_produce_subscribe(secure_broker, unique_name, tmp_path):
    address, client = secure_broker
    env = worker_env(address, unique_name, tmp_path / "state", **client)
    with WorkerProcess(env, tmp_path / "worker.log"):
        produced = _cli(env, "produce", "--synthetic", "--users", str(USERS), "--limit", "400")
        assert produced.returncode == 0, produced.stderr
        latest: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while sum(latest.values()) < EVENTS and time.monotonic() < deadline:
            out = _cli(env, "subscribe", "--json", "--timeout", "5")
            assert out.returncode == 0, out.stderr
            for line in out.stdout.splitlines():
                snap = json.loads(line)
                latest[snap["user_id"]] = max(latest.get(snap["user_id"], 0), snap["version"])
    assert len(latest) == USERS
    assert sum(latest.values()) == EVENTS  # every event applied once, through SASL_SSL
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert client["KAFKA_SASL_PASSWORD"] not in log


@pytest.mark.parametrize("fault", ["wrong password", "untrusted CA"])
def test_tls_bad_credentials_fail_fast_on_one_line(
    secure_broker, unique_name, tmp_path, fault: str
):
    address, client = secure_broker
    bad = dict(client)
    if fault == "wrong password":
        bad["KAFKA_SASL_PASSWORD"] = "not-the-password"
        expect = "SASL authentication as 'interest' failed"
    else:
        bad["KAFKA_SSL_CAFILE"] = str(_untrusted_ca(tmp_path))
        expect = "certificate at"
    env = worker_env(address, unique_name, tmp_path / "state", **bad)
    for args in (
        ["produce", "--synthetic", "--limit", "10"],
        ["subscribe", "--timeout", "5"],
        ["worker"],
    ):
        started = time.monotonic()
        out = _cli(env, *args, timeout=60)
        took = time.monotonic() - started
        lines = out.stderr.strip().splitlines()
        print(f"{fault}: {args[0]} exit {out.returncode} after {took:.1f}s: {lines[-1:]}")
        assert out.returncode == 1, out.stderr  # a failed run, not a usage error (2)
        # Our own check answers within its 5 s timeouts; a client left to find out retries
        # until its request timeout (40 s) and then reports only "unable to bootstrap".
        assert took < 30, f"{args[0]} took {took:.0f} s to fail"
        assert len(lines) == 1 and lines[0].startswith("interest-tracker: error:"), out.stderr
        assert expect in lines[0]
        assert "not-the-password" not in out.stderr
        assert "bootstrap" not in out.stderr  # our check's reason, not a client's retry timeout
