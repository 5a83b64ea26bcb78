"""Running the pieces locally: the project's broker and real worker processes.

Used by the demo, the benchmarks and the kafka-tier tests, so all three start things alike.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from stream.settings import REPO_ROOT

KAFKA_SH = REPO_ROOT / "docker" / "kafka" / "kafka.sh"


class BrokerError(RuntimeError):
    """The local broker could not be started.

    ``start_local_broker`` raises it with the tail of ``kafka.sh up``'s stderr (that takes a
    process, so it is not run here); it is a ``RuntimeError``, and callers that turn it into a
    skip or an error line (the kafka-tier fixtures, the demo) read its message.

    Examples
    --------
    >>> try:
    ...     raise BrokerError("the local Kafka broker did not start:\\nkafka: mvn is needed")
    ... except RuntimeError as exc:
    ...     print(f"kafka tier: no broker: {exc}")
    kafka tier: no broker: the local Kafka broker did not start:
    kafka: mvn is needed
    """


def start_local_broker(env: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Start (or find) the local broker: its address, and whether this call started it."""
    env = {k: v for k, v in (env or os.environ).items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    was_up = subprocess.run([str(KAFKA_SH), "status"], capture_output=True, env=env).returncode == 0
    out = subprocess.run(
        [str(KAFKA_SH), "up"], capture_output=True, text=True, env=env, timeout=600
    )
    if out.returncode != 0:
        raise BrokerError(f"the local Kafka broker did not start:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1].split("=", 1)[1], not was_up


def stop_local_broker(env: Mapping[str, str] | None = None) -> None:
    """Stop the local broker (the one of ``env``'s ``KAFKA_RUN_DIR`` when given)."""
    subprocess.run(
        [str(KAFKA_SH), "down"], capture_output=True, timeout=120, env=dict(env or os.environ)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def delete_run_topics(bootstrap: str, prefix: str, timeout_s: float = 30.0) -> list[str]:
    """Delete the topics whose names start with ``prefix`` (a run's own: events, snapshots,
    changelogs, the assignor's), and return their names once the broker no longer lists them.
    A bench run leaves gigabytes of logs in the local broker otherwise; after a few dozen runs
    (tens of GB) it failed to register on restart (``DUPLICATE_BROKER_REGISTRATION``) and
    workers never joined."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        if names:
            admin.delete_topics(names)
            _wait_until_unlisted(admin, set(names), timeout_s)
        return names
    finally:
        admin.close()


def _wait_until_unlisted(admin, names: set[str], timeout_s: float) -> None:
    # The controller accepts a deletion before every broker's metadata drops the topic.
    deadline = time.monotonic() + timeout_s
    while left := names & set(admin.list_topics()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still listed {timeout_s:g} s after deletion: {sorted(left)}")
        time.sleep(0.2)


def isolated_env(bootstrap: str, name: str, state_dir: Path) -> dict[str, str]:
    """This process's environment with topics, group and state dir of a run's own."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        INTEREST_EVENTS_TOPIC=f"{name}.events",
        INTEREST_SNAPSHOTS_TOPIC=f"{name}.snapshots",
        INTEREST_DLQ_TOPIC=f"{name}.dlq",
        INTEREST_ITEMS_TOPIC=f"{name}.items",
        INTEREST_APP_ID=f"{name}.app",
        INTEREST_STATE_DIR=str(state_dir),
    )
    return env


def worker_env(bootstrap: str, name: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a worker and its clients: own topics, group, state dir and web port."""
    env = isolated_env(bootstrap, name, state_dir)
    env.update(
        INTEREST_WEB_PORT=str(free_port()),
        INTEREST_MIN_INTERVAL_S="0.5",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """An ``interest-tracker worker`` process; ``start`` waits until Faust says it is ready.

    Examples
    --------
    Before ``start`` there is no process, only the run's own environment (a copy):

    >>> from tempfile import gettempdir
    >>> env = worker_env("127.0.0.1:1", "doc", Path(gettempdir()) / "doc-state")
    >>> worker = WorkerProcess(env, Path(gettempdir()) / "doc-worker.log")
    >>> env["INTEREST_APP_ID"] = "changed later"
    >>> worker.env["INTEREST_EVENTS_TOPIC"], worker.env["INTEREST_APP_ID"], worker.proc
    ('doc.events', 'doc.app', None)
    >>> worker.stop()  # nothing started, nothing to stop: ``finally: worker.stop()`` is safe
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        loglevel: str = "info",
        module: str = "stream.cli",
    ):
        self.module = module
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.loglevel = loglevel
        self.proc: subprocess.Popen | None = None
        self.ready_after: float | None = None

    def start(self, timeout: float = 120) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        offset = self.log_path.stat().st_size
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "worker", "-l", self.loglevel],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.tail()}")
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                if b"Worker ready" in fh.read():
                    self.ready_after = time.monotonic() - started
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"worker not ready within {timeout}s:\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def metric(self, name: str) -> float:
        """One unlabelled sample of the worker's ``/metrics`` (0 when it has none yet)."""
        from stream.dev.demo_view import parse_metrics

        return parse_metrics(self.metrics_text())[0].get(name, 0.0)

    def metrics_text(self) -> str:
        """The worker's ``/metrics``, as text."""
        url = f"http://127.0.0.1:{self.env['INTEREST_WEB_PORT']}/metrics"
        request = urllib.request.Request(url)
        if token := self.env.get("INTEREST_WEB_TOKEN"):
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.read().decode()

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
