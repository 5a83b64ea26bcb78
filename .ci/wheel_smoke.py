"""Smoke test of an installed wheel, run by the fresh virtualenv's Python from outside the
repository (so nothing is imported from the source tree): the CLI, a real worker serving the
dashboard from the package's assets, the JSON schemas and the Python API end to end.

Usage: python wheel_smoke.py BOOTSTRAP
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def check(condition: bool, what: str) -> None:
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        sys.exit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def main(bootstrap: str) -> None:
    import stream
    from stream.schemas import load_schema
    from stream.web.page import STATIC_DIR

    venv = Path(sys.prefix).resolve()
    check(Path(stream.__file__).resolve().is_relative_to(venv), f"stream imported from {venv}")
    check((STATIC_DIR / "index.html").is_file(), "dashboard assets are in the wheel")
    check(load_schema("snapshot")["title"] == "interest-tracker snapshot", "schemas are in it")
    cli = str(venv / "bin" / "interest-tracker")
    out = subprocess.run([cli, "--help"], capture_output=True, text=True)
    check(out.returncode == 0 and "worker" in out.stdout, "interest-tracker --help")

    run, port = f"wheel-check-{os.getpid()}-{int(time.time())}", free_port()
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        INTEREST_EVENTS_TOPIC=f"{run}.events",
        INTEREST_SNAPSHOTS_TOPIC=f"{run}.snapshots",
        INTEREST_DLQ_TOPIC=f"{run}.dlq",
        INTEREST_APP_ID=run,
        INTEREST_WEB_PORT=str(port),
        INTEREST_MIN_INTERVAL_S="0.2",
    )
    os.environ.update(env)
    state = tempfile.mkdtemp(prefix="wheel-check-")
    log = open(Path(state) / "worker.log", "w+b")  # noqa: SIM115 - read while it runs
    worker = subprocess.Popen(
        [cli, "worker", "-l", "info"], env=env, cwd=state, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while b"Worker ready" not in Path(log.name).read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                print(Path(log.name).read_text(errors="replace")[-3000:])
                check(False, "interest-tracker worker is ready")
            time.sleep(0.2)
        check(True, "interest-tracker worker is ready")
        base = f"http://127.0.0.1:{port}"
        check(b"<html" in get(base + "/").lower(), "worker serves the dashboard page")
        check(len(get(base + "/static/app.js")) > 1000, "worker serves the packaged app.js")
        check(b"interest_events_total" in get(base + "/metrics"), "worker serves /metrics")

        from models.online import UserInterest
        from stream.clients import Producer, iterate_snapshots

        user = UserInterest()
        user.learn_one({"categories": ["shoes"], "event_type": "view", "ts": 0.0})
        proba = user.predict_proba_one({})
        check("shoes" in proba and abs(sum(proba.values()) - 1) < 1e-9, "models API")
        with Producer() as producer:
            producer.send(
                {
                    "user_id": "wheel",
                    "item_id": "i1",
                    "categories": ["shoes"],
                    "event_type": "click",
                    "ts": time.time(),
                }
            )
        # the population snapshots keep the topic busy: stop at the user's first snapshot
        snap = next(iterate_snapshots(user="wheel", timeout_s=60), {})
        check(snap.get("n_events") == 1, "Producer -> worker -> iterate_snapshots")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


if __name__ == "__main__":
    main(sys.argv[1])
