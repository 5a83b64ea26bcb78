"""One settings object, read from the environment; every setting has a laptop default.

| variable | default | meaning |
|---|---|---|
| ``KAFKA_BOOTSTRAP_SERVERS`` | the broker ``make kafka-up`` started | Kafka cluster |
| ``INTEREST_EVENTS_TOPIC`` | ``interest.events`` | input events |
| ``INTEREST_SNAPSHOTS_TOPIC`` | ``interest.snapshots`` | output snapshots (compacted) |
| ``INTEREST_DLQ_TOPIC`` | ``interest.events.dlq`` | rejected events + reason |
| ``INTEREST_ITEMS_TOPIC`` | ``interest.items`` | item catalog (compacted, key = item id) |
| ``INTEREST_PARTITIONS`` | ``4`` | partitions of the events topic and tables |
| ``INTEREST_APP_ID`` | ``interest-tracker`` | Faust app id = consumer group |
| ``INTEREST_STATE_DIR`` | ``.interest-state`` | Faust table data dir |
| ``INTEREST_STORE`` | ``memory://`` | Faust table store |
| ``INTEREST_WEB_HOST`` / ``_PORT`` | ``127.0.0.1`` / ``6066`` | dashboard and endpoints |
| ``INTEREST_WEIGHTS`` | ``view=1,click=1,cart=2,fav=2,purchase=2,rate=1`` | event weights |
| ``INTEREST_SHORT_HALF_LIFE_S`` / ``_LONG_`` | ``3600`` / ``7776000`` | decay half-lives |
| ``INTEREST_PRIOR_STRENGTH`` | ``5.0`` | Dirichlet pseudo-count of the prior |
| ``INTEREST_MAX_CATEGORIES`` | ``24`` | tracked categories per user and horizon |
| ``INTEREST_HISTORY`` | ``50`` | last events kept per user (sequence model input) |
| ``INTEREST_TOP_K`` | ``10`` | categories listed in a snapshot |
| ``INTEREST_MIN_INTERVAL_S`` | ``1.0`` | at most one snapshot per user per interval |
| ``INTEREST_TV_THRESHOLD`` | ``0.2`` | emit at once when the distribution moved more |
| ``INTEREST_LATENESS_S`` | ``86400`` | events older than a user's latest by more go to the DLQ |
| ``INTEREST_MAX_FUTURE_S`` | ``300`` | allowed clock skew into the future |
| ``INTEREST_MAX_PAYLOAD`` | ``65536`` | bytes; larger messages go to the DLQ |
| ``INTEREST_BATCH`` / ``INTEREST_BATCH_MS`` | ``2000`` / ``50`` | records per fetch / wait |
| ``INTEREST_COMMIT_INTERVAL_S`` | ``1.0`` | commit window: changed records written, then offsets |
| ``INTEREST_CACHE_USERS`` | ``4096`` | live user records kept between windows (the record cache) |
| ``INTEREST_DASHBOARD_FEED_MAX_PER_S`` | ``1000`` | snapshots/s the dashboard samples at most |
| ``INTEREST_CHECKPOINT`` | unset | sequence model checkpoint (scoring off when unset) |
| ``INTEREST_COLLAB_PRIOR`` | unset | collaborative prior file (``interest-tracker prior``) |
| ``INTEREST_SCORER_BATCH`` / ``INTEREST_SCORER_MS`` | ``256`` / ``200`` | micro-batch / period |
| ``INTEREST_SCORER_INT8`` | ``0`` | int8 dynamic quantisation on CPU |
| ``INTEREST_SCORER_PROCESS`` | ``1`` | run the scorer in its own process (``0``: a thread) |
| ``INTEREST_SNAPSHOT_FORMAT`` | ``msgpack`` | snapshot encoding: ``msgpack`` or ``json`` |
| ``INTEREST_TOP_ITEMS`` | ``0`` | next items predicted in a snapshot (0 = off) |
| ``INTEREST_PSEUDONYMISE_KEY`` | unset | store and publish users under a keyed hash of their id |
| ``INTEREST_SESSION_TIMEOUT_S`` | ``6`` | group session: a dead worker's partitions move after it |
| ``INTEREST_HEARTBEAT_S`` | ``1`` | heartbeat interval (below the session timeout) |
| ``INTEREST_REBALANCE_TIMEOUT_S`` | ``10`` | a rebalance waits this long for members |
| ``INTEREST_STANDBY_REPLICAS`` | ``1`` | warm table copies on other workers |
| ``INTEREST_GROUP_INSTANCE_ID`` | unset | static membership: a restart skips the rebalance |
| ``KAFKA_SECURITY_PROTOCOL`` etc. | ``PLAINTEXT`` | see ``KafkaSecurity`` (SASL, SSL) |
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from models.online import InterestConfig
from models.schema import DEFAULT_EVENT_WEIGHTS

REPO_ROOT = Path(__file__).resolve().parents[1]


def local_broker_address() -> str | None:
    """The address the project's local broker wrote when ``make kafka-up`` started it."""
    run_dir = Path(os.environ.get("KAFKA_RUN_DIR", REPO_ROOT / "docker" / ".kafka-run"))
    addr, pid = run_dir / "bootstrap", run_dir / "kafka.pid"
    if addr.exists() and pid.exists():
        try:
            os.kill(int(pid.read_text().strip()), 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return None
        return addr.read_text().strip() or None
    return None


@dataclass(frozen=True)
class KafkaSecurity:
    """Kafka client security from ``KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT``, ``SSL``,
    ``SASL_PLAINTEXT``, ``SASL_SSL``), ``KAFKA_SASL_MECHANISM`` (``PLAIN``,
    ``SCRAM-SHA-256``, ``SCRAM-SHA-512``), ``KAFKA_SASL_USERNAME`` / ``KAFKA_SASL_PASSWORD``
    and ``KAFKA_SSL_CAFILE`` / ``KAFKA_SSL_CERTFILE`` / ``KAFKA_SSL_KEYFILE``; passed to every
    client (Faust, aiokafka, kafka-python). The password never appears in a repr or a log.

    >>> sec = KafkaSecurity(protocol="SASL_SSL", sasl_username="u", sasl_password="secret")
    >>> "secret" in repr(sec), sec.kafka_python()["sasl_plain_password"]
    (False, 'secret')
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        return cls(
            protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", "PLAIN").upper(),
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
            ssl_certfile=env.get("KAFKA_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self):
        import ssl

        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx

    def _sasl(self) -> dict:
        out: dict = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return out

    def kafka_python(self) -> dict:
        """Options for kafka-python's producers, consumers and admin client."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = self._sasl()
        if self.uses_ssl:
            out.update(
                ssl_cafile=self.ssl_cafile,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
            )
        return out

    def aiokafka(self) -> dict:
        """Options for aiokafka clients (TLS as an ``ssl_context``)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = self._sasl()
        if self.uses_ssl:
            out["ssl_context"] = self.ssl_context()
        return out

    def faust_credentials(self):
        """``broker_credentials`` for the Faust app (None for plaintext)."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context() if self.uses_ssl else None,
            )
        if self.uses_ssl:
            return faust.SSLCredentials(self.ssl_context())
        return None


def parse_weights(text: str) -> dict[str, float]:
    """``"view=1,cart=3"`` -> ``{"view": 1.0, "cart": 3.0}`` on top of the defaults.

    >>> parse_weights("cart=4")["cart"], parse_weights("")["purchase"]
    (4.0, 2.0)
    """
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not value:
            raise ValueError(f"INTEREST_WEIGHTS: expected name=value, got {part!r}")
        weights[name.strip()] = float(value)
    return weights


def _snapshot_format(text: str) -> str:
    fmt = text.strip().lower()
    if fmt not in ("msgpack", "json"):
        raise ValueError(f"INTEREST_SNAPSHOT_FORMAT must be msgpack or json, got {text!r}")
    return fmt


def _non_negative(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{name}: must be 0 or more, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything configurable about the stream side, from the environment."""

    bootstrap: str | None
    events_topic: str = "interest.events"
    snapshots_topic: str = "interest.snapshots"
    dlq_topic: str = "interest.events.dlq"
    items_topic: str = "interest.items"
    partitions: int = 4
    app_id: str = "interest-tracker"
    state_dir: str = ".interest-state"
    store: str = "memory://"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    top_k: int = 10
    history: int = 50
    min_interval_s: float = 1.0
    tv_threshold: float = 0.2
    lateness_s: float = 86400.0
    max_future_s: float = 300.0
    max_payload: int = 65536
    batch: int = 2000
    batch_ms: float = 50.0
    commit_interval_s: float = 1.0
    cache_users: int = 4096
    dashboard_feed_max_per_s: int = 1000
    checkpoint: str | None = None
    collab_prior: str | None = None
    scorer_batch: int = 256
    scorer_ms: float = 200.0
    scorer_int8: bool = False
    scorer_process: bool = True
    snapshot_format: str = "msgpack"
    session_timeout_s: float = 6.0
    heartbeat_s: float = 1.0
    rebalance_timeout_s: float = 10.0
    standby_replicas: int = 1
    group_instance_id: str | None = None
    top_items: int = 0
    interest: InterestConfig = field(default_factory=InterestConfig)
    security: KafkaSecurity = field(default_factory=lambda: KafkaSecurity())
    pseudonymise_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.session_timeout_s:
            raise ValueError(
                "INTEREST_HEARTBEAT_S must be > 0 and below INTEREST_SESSION_TIMEOUT_S, got "
                f"{self.heartbeat_s} and {self.session_timeout_s}"
            )
        if self.rebalance_timeout_s <= 0 or self.standby_replicas < 0:
            raise ValueError(
                "INTEREST_REBALANCE_TIMEOUT_S must be > 0 and INTEREST_STANDBY_REPLICAS >= 0"
            )

    def group_config(self) -> dict:
        """Faust options for the consumer group: failure detection, rebalances, standbys.

        >>> Settings(bootstrap=None).group_config()["broker_session_timeout"]
        6.0
        """
        return {
            "broker_session_timeout": self.session_timeout_s,
            "broker_heartbeat_interval": self.heartbeat_s,
            "broker_rebalance_timeout": self.rebalance_timeout_s,
            "table_standby_replicas": self.standby_replicas,
            "consumer_group_instance_id": self.group_instance_id,
        }

    def user_key(self, user_id: str) -> str:
        """The id a user is stored and published under: a keyed hash when pseudonymising.

        >>> Settings(bootstrap=None).user_key("alice")
        'alice'
        >>> Settings(bootstrap=None, pseudonymise_key="k").user_key("alice")
        'p-ec631a55bb81f5b9dc96aa930a45628d'
        """
        if not self.pseudonymise_key:
            return user_id
        digest = hmac.new(self.pseudonymise_key.encode(), user_id.encode(), hashlib.sha256)
        return "p-" + digest.hexdigest()[:32]

    def kafka_client_config(self) -> dict:
        """Security options for kafka-python clients (empty for plaintext)."""
        return self.security.kafka_python()

    @property
    def broker_url(self) -> str:
        """Faust's broker URL (``kafka://h1:p1;h2:p2``)."""
        if not self.bootstrap:
            raise RuntimeError(
                "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or start one with `make kafka-up`"
            )
        return "kafka://" + ";".join(self.bootstrap.split(","))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ

        def e(name: str, default: str) -> str:
            return env.get(name, default)

        interest = InterestConfig(
            event_weights=parse_weights(e("INTEREST_WEIGHTS", "")),
            short_half_life=float(e("INTEREST_SHORT_HALF_LIFE_S", "3600")),
            long_half_life=float(e("INTEREST_LONG_HALF_LIFE_S", "7776000")),
            prior_strength=float(e("INTEREST_PRIOR_STRENGTH", "5.0")),
            max_categories=int(e("INTEREST_MAX_CATEGORIES", "24")),
        )
        return cls(
            bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or local_broker_address(),
            events_topic=e("INTEREST_EVENTS_TOPIC", "interest.events"),
            snapshots_topic=e("INTEREST_SNAPSHOTS_TOPIC", "interest.snapshots"),
            dlq_topic=e("INTEREST_DLQ_TOPIC", "interest.events.dlq"),
            items_topic=e("INTEREST_ITEMS_TOPIC", "interest.items"),
            partitions=int(e("INTEREST_PARTITIONS", "4")),
            app_id=e("INTEREST_APP_ID", "interest-tracker"),
            state_dir=e("INTEREST_STATE_DIR", ".interest-state"),
            store=e("INTEREST_STORE", "memory://"),
            web_host=e("INTEREST_WEB_HOST", "127.0.0.1"),
            web_port=int(e("INTEREST_WEB_PORT", "6066")),
            top_k=int(e("INTEREST_TOP_K", "10")),
            history=int(e("INTEREST_HISTORY", "50")),
            min_interval_s=float(e("INTEREST_MIN_INTERVAL_S", "1.0")),
            tv_threshold=float(e("INTEREST_TV_THRESHOLD", "0.2")),
            lateness_s=float(e("INTEREST_LATENESS_S", "86400")),
            max_future_s=float(e("INTEREST_MAX_FUTURE_S", "300")),
            max_payload=int(e("INTEREST_MAX_PAYLOAD", "65536")),
            batch=int(e("INTEREST_BATCH", "2000")),
            batch_ms=float(e("INTEREST_BATCH_MS", "50")),
            commit_interval_s=float(e("INTEREST_COMMIT_INTERVAL_S", "1.0")),
            cache_users=int(e("INTEREST_CACHE_USERS", "4096")),
            dashboard_feed_max_per_s=int(e("INTEREST_DASHBOARD_FEED_MAX_PER_S", "1000")),
            checkpoint=env.get("INTEREST_CHECKPOINT") or None,
            collab_prior=env.get("INTEREST_COLLAB_PRIOR") or None,
            scorer_batch=int(e("INTEREST_SCORER_BATCH", "256")),
            scorer_ms=float(e("INTEREST_SCORER_MS", "200")),
            scorer_int8=e("INTEREST_SCORER_INT8", "0") in ("1", "true", "yes"),
            scorer_process=e("INTEREST_SCORER_PROCESS", "1") in ("1", "true", "yes"),
            snapshot_format=_snapshot_format(e("INTEREST_SNAPSHOT_FORMAT", "msgpack")),
            session_timeout_s=float(e("INTEREST_SESSION_TIMEOUT_S", "6")),
            heartbeat_s=float(e("INTEREST_HEARTBEAT_S", "1")),
            rebalance_timeout_s=float(e("INTEREST_REBALANCE_TIMEOUT_S", "10")),
            standby_replicas=int(e("INTEREST_STANDBY_REPLICAS", "1")),
            group_instance_id=env.get("INTEREST_GROUP_INSTANCE_ID") or None,
            top_items=_non_negative("INTEREST_TOP_ITEMS", e("INTEREST_TOP_ITEMS", "0")),
            security=KafkaSecurity.from_env(env),
            pseudonymise_key=env.get("INTEREST_PSEUDONYMISE_KEY") or None,
            interest=interest,
        )
