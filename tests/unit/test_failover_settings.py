"""Failover settings reach Faust, bad values are refused, and the failover tools parse logs."""

from __future__ import annotations

import pytest

from stream.app import create_app
from stream.dev.failover import changelog_replayed
from stream.settings import Settings

pytestmark = pytest.mark.unit


def test_failover_settings_from_env_reach_the_faust_app():
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "INTEREST_SESSION_TIMEOUT_S": "9",
            "INTEREST_HEARTBEAT_S": "2",
            "INTEREST_REBALANCE_TIMEOUT_S": "20",
            "INTEREST_STANDBY_REPLICAS": "0",
            "INTEREST_GROUP_INSTANCE_ID": "worker-a",
        }
    )
    app, _ = create_app(settings)
    conf = app.conf
    assert conf.broker_session_timeout == 9.0
    assert conf.broker_heartbeat_interval == 2.0
    assert conf.broker_rebalance_timeout == 20.0
    assert conf.table_standby_replicas == 0
    assert conf.consumer_group_instance_id == "worker-a"


def test_defaults_fail_over_in_seconds_not_faust_s_minute():
    conf = create_app(Settings(bootstrap="127.0.0.1:1"))[0].conf
    assert conf.broker_session_timeout == 6.0 < 60.0
    assert conf.broker_heartbeat_interval < conf.broker_session_timeout / 3
    assert conf.consumer_group_instance_id is None  # dynamic membership unless asked


@pytest.mark.parametrize(
    "env",
    [
        {"INTEREST_HEARTBEAT_S": "6"},
        {"INTEREST_HEARTBEAT_S": "0"},
        {"INTEREST_SESSION_TIMEOUT_S": "0.5"},
        {"INTEREST_STANDBY_REPLICAS": "-1"},
        {"INTEREST_REBALANCE_TIMEOUT_S": "0"},
    ],
)
def test_bad_failover_settings_are_refused_with_the_variable_named(env):
    with pytest.raises(ValueError, match="INTEREST_"):
        Settings.from_env(env)


def test_changelog_replayed_sums_highwater_minus_start_per_recovery():
    block = [
        "[t] [1] [INFO] [^---Recovery]: Highwater for active changelog partitions:",
        "+Highwater - Active----+-----------+-----------+",
        "| topic                | partition | highwater |",
        "| app-users-changelog  | 0         | 120       |",
        "| 〃                   | 1         | -1        |",
        "[t] [1] [INFO] [^---Recovery]: active offsets at start of reading:",
        "| app-users-changelog  | 0         | 19        |",
        "| 〃                   | 1         | -1        |",
        "[t] [1] [INFO] [^---Recovery]: Resuming flow...",
    ]
    assert changelog_replayed("\n".join(block)) == 101
    assert changelog_replayed("\n".join(block * 2)) == 202  # two recoveries in one log
    assert changelog_replayed("[t] Worker ready") == 0
