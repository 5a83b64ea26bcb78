"""One settings object, read from the environment; every setting has a laptop default.

Each setting is declared once, as a field of :class:`Settings` (or of :class:`KafkaSecurity`,
or in ``INTEREST_VARIABLES`` for the estimator's :class:`~models.online.InterestConfig`) with its
variable, default and help (``stream.envvars``); ``Settings.from_env`` reads them, the class
docstring lists them and the README's configuration table is checked against them
(``python -m stream.dev.settings_table`` rewrites it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path

from models.online import InterestConfig
from models.schema import (
    DEFAULT_EVENT_WEIGHTS,
    MAX_FUTURE_S,
    MAX_PAYLOAD_BYTES,
    canonical_event_type,
)
from models.tracker import TrackerConfig
from stream.envvars import (
    EnvVar,
    SettingsError,
    choice,
    docstring_list,
    env_flag,
    env_float,
    env_int,
    env_optional,
    env_text,
    fraction,
    from_environ,
    nested,
    non_empty_text,
    non_negative_number,
    non_negative_whole,
    optional_text,
    port,
    positive_number,
    positive_whole,
    secret,
    setting,
)
from stream.kafka_security import KafkaSecurity
from stream.processes import IDLE, MAX_NICE

REPO_ROOT = Path(__file__).resolve().parents[1]
PSEUDONYM_PREFIX, PSEUDONYM_HEX_DIGITS = "p-", 32  # Settings.user_key's form
PSEUDONYM = re.compile(f"{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX_DIGITS}}}")


def local_broker_run_dir(env: Mapping[str, str] | None = None) -> Path:
    """The local broker's state folder (``KAFKA_RUN_DIR``; ``docker/kafka/kafka.sh``'s)."""
    env = os.environ if env is None else env
    return Path(env.get("KAFKA_RUN_DIR", REPO_ROOT / "docker" / ".kafka-run"))


def local_broker_pid(env: Mapping[str, str] | None = None) -> int | None:
    """The process id of the project's local broker (its run folder's ``kafka.pid``) if it
    runs."""
    try:
        pid = int((local_broker_run_dir(env) / "kafka.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def local_broker_address() -> str | None:
    """The address the project's local broker wrote when ``make kafka-up`` started it."""
    addr = local_broker_run_dir() / "bootstrap"
    if local_broker_pid() is None or not addr.exists():
        return None
    return addr.read_text().strip() or None


def nice_or_idle(value: str) -> int | str:
    """A niceness 0–19, or ``idle``: the scheduler's idle class (``stream.processes``).

    >>> nice_or_idle(" Idle "), nice_or_idle("7")
    ('idle', 7)
    """
    text = value.strip().lower()
    return IDLE if text == IDLE else non_negative_whole(text)


def count_or_auto(value: str) -> int | None:
    """A count of 0 or more, or ``auto`` (None: the code decides)."""
    return None if value.strip().lower() == "auto" else non_negative_whole(value)


# A snapshot builder process needs a core of its own: with fewer than this many, the worker's
# threads and a broker or load generator beside it leave none (docs/RESULTS.md, 18:06 run),
# and a worker that keeps up publishes sooner when it builds its snapshots itself. So there
# `auto` hands the builder snapshots only while the worker is behind its input.
BUILDER_MIN_CORES = 4


def parse_weights(text: str) -> dict[str, float]:
    """``"view=1,cart=3"`` -> ``{"view": 1.0, "cart": 3.0}`` on top of the defaults.

    >>> parse_weights("cart=4")["cart"], parse_weights("")["purchase"]
    (4.0, 2.0)
    """
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = canonical_event_type(name.strip())
        if not value:
            raise ValueError(f"must be name=value pairs, got {part!r}")
        if name not in weights:
            raise ValueError(f"names an unknown event type {name!r} (known: {', '.join(weights)})")
        try:
            weights[name] = non_negative_number(value)
        except ValueError as exc:
            raise ValueError(f"{name}'s weight {exc}") from None
    if not any(weights.values()):
        raise ValueError("gives every event type a weight of 0")
    return weights


# The estimator's settings: their defaults are InterestConfig's own.
INTEREST_VARIABLES: tuple[tuple[str, EnvVar], ...] = (
    (
        "event_weights",
        EnvVar(
            "INTEREST_WEIGHTS",
            parse_weights,
            "event-type weights (`name=value,...`, on top of the defaults)",
            shown="`" + ",".join(f"{k}={v:g}" for k, v in DEFAULT_EVENT_WEIGHTS.items()) + "`",
        ),
    ),
    (
        "short_half_life",
        EnvVar(
            "INTEREST_SHORT_HALF_LIFE_S",
            positive_number,
            "short-term decay half-life (s, event time)",
        ),
    ),
    (
        "long_half_life",
        EnvVar(
            "INTEREST_LONG_HALF_LIFE_S",
            positive_number,
            "long-term decay half-life (s, event time)",
        ),
    ),
    (
        "prior_strength",
        EnvVar(
            "INTEREST_PRIOR_STRENGTH",
            non_negative_number,
            "Dirichlet pseudo-count toward the population",
        ),
    ),
    (
        "population_half_life",
        EnvVar(
            "INTEREST_POPULATION_HALF_LIFE_S",
            positive_number,
            "the population prior's long horizon: decay half-life (s, event time)",
        ),
    ),
    (
        "population_short_half_life",
        EnvVar(
            "INTEREST_POPULATION_SHORT_HALF_LIFE_S",
            non_negative_number,
            "the population prior's short horizon (0: off); the mixture weight is learned",
        ),
    ),
    (
        "max_categories",
        EnvVar(
            "INTEREST_MAX_CATEGORIES",
            positive_whole,
            "tracked categories per user and horizon (the rest is a residual)",
        ),
    ),
)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about the stream side, from the environment.

    Variables (``Settings.from_env``):

    {table}
    """

    bootstrap: str | None = setting(
        "KAFKA_BOOTSTRAP_SERVERS",
        MISSING,
        "Kafka cluster (`host:port,...`)",
        parse=optional_text,
        shown="the broker `make kafka-up` started",
    )
    events_topic: str = env_text(
        "INTEREST_EVENTS_TOPIC", "interest.events", "input events", parse=non_empty_text
    )
    snapshots_topic: str = env_text(
        "INTEREST_SNAPSHOTS_TOPIC",
        "interest.snapshots",
        "output snapshots (compacted)",
        parse=non_empty_text,
    )
    dlq_topic: str = env_text(
        "INTEREST_DLQ_TOPIC",
        "interest.events.dlq",
        "rejected events and their reason",
        parse=non_empty_text,
    )
    items_topic: str = env_text(
        "INTEREST_ITEMS_TOPIC",
        "interest.items",
        "the item catalog (compacted, one partition, key = item id)",
        parse=non_empty_text,
    )
    partitions: int = env_int(
        "INTEREST_PARTITIONS", 4, "partitions of the topics and tables", parse=positive_whole
    )
    app_id: str = env_text(
        "INTEREST_APP_ID", "interest-tracker", "Faust app id = consumer group", parse=non_empty_text
    )
    state_dir: str = env_text(
        "INTEREST_STATE_DIR", ".interest-state", "Faust table data dir", parse=non_empty_text
    )
    store: str = env_text("INTEREST_STORE", "memory://", "Faust table store", parse=non_empty_text)
    web_host: str = env_text("INTEREST_WEB_HOST", "127.0.0.1", "the worker's web server: host")
    web_port: int = env_int("INTEREST_WEB_PORT", 6066, "the worker's web server: port", parse=port)
    web_token: str | None = setting(
        "INTEREST_WEB_TOKEN",
        None,
        "token required by the dashboard and endpoints (not `/health`; set but blank: refused)",
        parse=secret,
        repr=False,
    )
    pseudonymise_key: str | None = setting(
        "INTEREST_PSEUDONYMISE_KEY",
        None,
        "store and publish users as `p-` + HMAC-SHA256(key, id)[:32] (set but blank: refused)",
        parse=secret,
        repr=False,
    )
    security: KafkaSecurity = nested(KafkaSecurity)
    interest: InterestConfig = nested(InterestConfig, INTEREST_VARIABLES)
    history: int = env_int(
        "INTEREST_HISTORY",
        TrackerConfig.history,
        "last events kept per user (sequence-model input, `explain`)",
        parse=positive_whole,
    )
    top_k: int = env_int(
        "INTEREST_TOP_K",
        TrackerConfig.top_k,
        "categories listed in a snapshot",
        parse=positive_whole,
    )
    min_interval_s: float = env_float(
        "INTEREST_MIN_INTERVAL_S",
        1.0,
        "at most one snapshot per user per interval",
        parse=non_negative_number,
    )
    tv_threshold: float = env_float(
        "INTEREST_TV_THRESHOLD",
        0.2,
        "emit at once when the distribution moved more (total variation)",
        parse=fraction,
    )
    lateness_s: float = env_float(
        "INTEREST_LATENESS_S",
        86400.0,
        "events older than a user's latest by more go to the DLQ",
        parse=non_negative_number,
    )
    max_future_s: float = env_float(
        "INTEREST_MAX_FUTURE_S",
        MAX_FUTURE_S,
        "allowed clock skew into the future",
        parse=non_negative_number,
    )
    max_payload: int = env_int(
        "INTEREST_MAX_PAYLOAD",
        MAX_PAYLOAD_BYTES,
        "bytes; larger messages go to the DLQ",
        parse=positive_whole,
    )
    batch_ms: float = env_float(
        "INTEREST_BATCH_MS", 50.0, "wait of the per-event fallback path (ms)", parse=positive_number
    )
    batch: int = env_int(
        "INTEREST_BATCH", 5000, "records per fetch (the ingest batch)", parse=positive_whole
    )
    commit_interval_s: float = env_float(
        "INTEREST_COMMIT_INTERVAL_S",
        1.0,
        "the commit window: changed user records are written to the table and its changelog, "
        "then the offsets they cover are committed (sooner once the worker has caught up)",
        parse=positive_number,
    )
    cache_users: int = env_int(
        "INTEREST_CACHE_USERS",
        4096,
        "live user records kept in the record cache between windows (the rest live as compact "
        "bytes in the table)",
        parse=non_negative_whole,
    )
    dashboard_feed_max_per_s: int = env_int(
        "INTEREST_DASHBOARD_FEED_MAX_PER_S",
        250,
        "snapshots a second the dashboard's feed reads at most; beyond that it samples (skips "
        "to the end); 0: no feed",
    )
    checkpoint: str | None = env_optional(
        "INTEREST_CHECKPOINT", "sequence-model checkpoint (scoring off when unset)"
    )
    collab_prior: str | None = env_optional(
        "INTEREST_COLLAB_PRIOR",
        "collaborative prior file from `interest-tracker prior` (reloaded when it changes)",
    )
    scorer_batch: int = env_int(
        "INTEREST_SCORER_BATCH", 256, "scorer micro-batch (users)", parse=positive_whole
    )
    scorer_ms: float = env_float(
        "INTEREST_SCORER_MS", 200.0, "scorer period (ms)", parse=positive_number
    )
    scorer_int8: bool = env_flag("INTEREST_SCORER_INT8", False, "int8 dynamic quantisation on CPU")
    scorer_device: str = env_text(
        "INTEREST_SCORER_DEVICE",
        "auto",
        "where the scorer runs: `cuda`, `cpu`, or `auto` (CUDA when present, else the CPU)",
        parse=choice("auto", "cpu", "cuda"),
    )
    scorer_process: bool = env_flag(
        "INTEREST_SCORER_PROCESS",
        True,
        "run the scorer in its own process (`0`: a thread of the worker)",
    )
    scorer_nice: int | str = setting(
        "INTEREST_SCORER_NICE",
        IDLE,
        "the scorer process's CPU priority below the worker's: `idle` (Linux's idle "
        "scheduling class: it runs on the CPU time nothing else asks for, so a busy machine "
        "scores less often instead of ingesting slower; where there is none, niceness 19), or "
        "a Unix niceness 0–19 (`0`: the same priority, and a core counted for it)",
        parse=nice_or_idle,
    )
    snapshot_processes: int | None = setting(
        "INTEREST_SNAPSHOT_PROCESSES",
        None,
        "processes that build and encode snapshots off the ingest loop (`0`: in the worker; "
        "`auto`: 1, which on a machine of fewer than 4 cores builds only while the worker is "
        "behind: see `INTEREST_SNAPSHOT_OFFLOAD_LAG`; none on 1 core; a scorer process at the "
        "worker's priority, `INTEREST_SCORER_NICE=0`, takes a core from the count)",
        parse=count_or_auto,
        shown="`auto`",
    )
    snapshot_offload_lag: int = setting(
        "INTEREST_SNAPSHOT_OFFLOAD_LAG",
        20_000,
        "with `INTEREST_SNAPSHOT_PROCESSES=auto` below 4 cores: the builder process takes a "
        "batch's snapshots only while the worker is at least this many events behind its input "
        "(a backlog, where throughput counts) and 1,000 or more are due; a worker that keeps up "
        "builds them itself, sooner",
        parse=non_negative_whole,
    )
    snapshot_format: str = setting(
        "INTEREST_SNAPSHOT_FORMAT",
        "msgpack",
        "snapshot encoding: `msgpack`, or `json` (UTF-8 JSON, same fields)",
        parse=choice("msgpack", "json"),
    )
    top_items: int = setting(
        "INTEREST_TOP_ITEMS",
        0,
        "predicted next items in a snapshot (`top_items`; item-vocabulary checkpoints; 0 = off)",
        parse=non_negative_whole,
    )
    session_timeout_s: float = env_float(
        "INTEREST_SESSION_TIMEOUT_S",
        6.0,
        "consumer-group session: a dead worker's partitions move after it (see Failover)",
        parse=positive_number,
    )
    heartbeat_s: float = env_float(
        "INTEREST_HEARTBEAT_S",
        1.0,
        "heartbeat interval (below the session timeout)",
        parse=positive_number,
    )
    rebalance_timeout_s: float = env_float(
        "INTEREST_REBALANCE_TIMEOUT_S",
        10.0,
        "how long a rebalance waits for the live members to rejoin",
        parse=positive_number,
    )
    standby_replicas: int = env_int(
        "INTEREST_STANDBY_REPLICAS",
        1,
        "warm copies of each table partition on other workers",
        parse=non_negative_whole,
    )
    group_instance_id: str | None = env_optional(
        "INTEREST_GROUP_INSTANCE_ID", "static group membership (one distinct id per worker)"
    )

    def __post_init__(self) -> None:
        if self.web_token is None and os.environ.get("INTEREST_WEB_TOKEN"):
            # Settings built in code still honour an operator's token: never serve open by
            # accident.
            object.__setattr__(self, "web_token", os.environ["INTEREST_WEB_TOKEN"])
        if not 0 < self.heartbeat_s < self.session_timeout_s:
            raise SettingsError(
                "INTEREST_HEARTBEAT_S must be > 0 and below INTEREST_SESSION_TIMEOUT_S, got "
                f"{self.heartbeat_s} and {self.session_timeout_s}"
            )
        if self.rebalance_timeout_s <= 0 or self.standby_replicas < 0:
            raise SettingsError(
                "INTEREST_REBALANCE_TIMEOUT_S must be > 0 and INTEREST_STANDBY_REPLICAS >= 0"
            )
        if self.scorer_nice != IDLE and not 0 <= self.scorer_nice <= MAX_NICE:
            raise SettingsError(
                f"INTEREST_SCORER_NICE must be {IDLE} or 0–{MAX_NICE}, got {self.scorer_nice}"
            )
        topics = {
            "INTEREST_EVENTS_TOPIC": self.events_topic,
            "INTEREST_SNAPSHOTS_TOPIC": self.snapshots_topic,
            "INTEREST_DLQ_TOPIC": self.dlq_topic,
            "INTEREST_ITEMS_TOPIC": self.items_topic,
        }
        if len(set(topics.values())) < len(topics):  # a loop: e.g. dead letters read as events
            named = ", ".join(f"{k}={v}" for k, v in topics.items())
            raise SettingsError(f"the topics must be four different ones, got {named}")
        if self.interest.long_half_life < self.interest.short_half_life:
            raise SettingsError(
                "INTEREST_LONG_HALF_LIFE_S must be >= INTEREST_SHORT_HALF_LIFE_S, got "
                f"{self.interest.long_half_life:g} and {self.interest.short_half_life:g}"
            )
        if self.dashboard_feed_max_per_s < 0:
            raise SettingsError(
                "INTEREST_DASHBOARD_FEED_MAX_PER_S must be >= 0, got "
                f"{self.dashboard_feed_max_per_s}"
            )

    def snapshot_builders(self, cores: int | None = None) -> tuple[int, int]:
        """How many snapshot builder processes to run (``INTEREST_SNAPSHOT_PROCESSES``), and
        how many events behind its input the worker must be for them to build (0: always).
        ``auto`` counts the cores the scorer's process leaves when it runs at the worker's
        priority (``INTEREST_SCORER_NICE=0``); below it, the scorer takes no core from them.

        >>> Settings(bootstrap=None).snapshot_builders(cores=2)
        (1, 20000)
        >>> Settings(bootstrap=None).snapshot_builders(cores=8)
        (1, 0)
        >>> Settings(bootstrap=None, snapshot_processes=2).snapshot_builders(cores=2)
        (2, 0)
        >>> Settings(bootstrap=None, checkpoint="model.pt").snapshot_builders(cores=2)
        (1, 20000)
        >>> Settings(bootstrap=None, checkpoint="model.pt", scorer_nice=0).snapshot_builders(2)
        (0, 0)
        """
        if self.snapshot_processes is not None:
            return self.snapshot_processes, 0
        cores = cores or os.cpu_count() or 1
        if self.checkpoint and self.scorer_process and self.scorer_nice == 0:
            cores -= 1  # the scorer's process runs flat out when users keep changing
        if cores >= BUILDER_MIN_CORES:
            return 1, 0
        return (1, self.snapshot_offload_lag) if cores >= 2 else (0, 0)

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
        return PSEUDONYM_PREFIX + digest.hexdigest()[:PSEUDONYM_HEX_DIGITS]

    def stored_user_id(self, given: str) -> str:
        """The id a user is kept under, given either that id or the user's own: ``given``
        when it already has :meth:`user_key`'s form, else ``user_key(given)``.

        >>> s = Settings(bootstrap=None, pseudonymise_key="k")
        >>> key = s.user_key("alice")
        >>> s.stored_user_id("alice") == s.stored_user_id(key) == key
        True
        """
        if self.pseudonymise_key and PSEUDONYM.fullmatch(given):
            return given
        return self.user_key(given)

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
        return from_environ(cls, env, fallbacks={"bootstrap": local_broker_address})


Settings.__doc__ = (Settings.__doc__ or "").format(table=docstring_list(Settings))
