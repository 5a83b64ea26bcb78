"""Settings are declared once: the README's table, the docstring and ``from_env`` agree."""

import dataclasses
import inspect

import pytest

from stream.dev.settings_table import readme_table
from stream.envvars import _declared, markdown_table, rows
from stream.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.unit


def test_the_readme_table_is_the_declared_one():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table(readme) == markdown_table(Settings), (
        "README.md's configuration table differs from stream/settings.py: "
        "run `python -m stream.dev.settings_table`"
    )


def test_every_variable_is_declared_once_and_documented():
    names = [name for name, _, _ in rows(Settings)]
    assert len(names) == len(set(names))
    doc = inspect.getdoc(Settings)
    assert all(f"- {name}:" in doc for name in names)


# The text of a changed value for settings whose type alone does not give one.
A_FILE = str(REPO_ROOT / "README.md")  # TLS paths must name files that exist
CHANGED_TEXT = {
    "INTEREST_WEIGHTS": "cart=5",
    "INTEREST_SCORER_DEVICE": "cpu",
    "KAFKA_SSL_CAFILE": A_FILE,
    "KAFKA_SSL_CERTFILE": A_FILE,
    "KAFKA_SSL_KEYFILE": A_FILE,
}
# Settings that are valid only with another one set beside them.
COMPANIONS = {"KAFKA_SSL_KEYFILE": {"KAFKA_SSL_CERTFILE": A_FILE}}
TEXTS = ("1", "0", "3", "0.25", "json", "rocksdb://", "x-topic", "h:1", "SCRAM-SHA-256", "SSL")


def reached(f: dataclasses.Field, attr: str, env: dict) -> object:
    """The value of setting ``attr`` of field ``f`` in ``Settings.from_env(env)``."""
    settings = Settings.from_env(env)
    return getattr(settings if "env" in f.metadata else getattr(settings, f.name), attr)


def candidate_texts(var, default) -> list[str]:
    if var.name in CHANGED_TEXT:
        return [CHANGED_TEXT[var.name]]
    if isinstance(default, bool):
        return ["0" if default else "1"]
    if isinstance(default, int | float):
        kind = type(default)
        return [repr(kind(default * 2 + 3)), repr(kind(default / 2)), repr(kind(default + 1))]
    return list(TEXTS)


def test_every_declared_variable_is_read():
    """Each variable alone, set to a valid value other than its default, reaches its field."""
    checked = 0
    for f in dataclasses.fields(Settings):
        for attr, var, default in _declared(f):
            for text in candidate_texts(var, default):
                try:
                    value = var.parse(text)
                    got = reached(f, attr, {**COMPANIONS.get(var.name, {}), var.name: text})
                except ValueError:  # not a valid value of this setting: try the next
                    continue
                if value != default:
                    assert got == value, var.name
                    checked += 1
                    break
            else:
                raise AssertionError(f"no changed value for {var.name}: add it to CHANGED_TEXT")
    assert checked == len(rows(Settings))


def test_a_bad_value_names_its_variable():
    with pytest.raises(ValueError, match="INTEREST_PARTITIONS must be a whole number"):
        Settings.from_env({"INTEREST_PARTITIONS": "four"})


def test_the_dashboard_feed_can_be_turned_off_but_not_below_zero():
    assert (
        Settings.from_env({"INTEREST_DASHBOARD_FEED_MAX_PER_S": "0"}).dashboard_feed_max_per_s == 0
    )
    with pytest.raises(ValueError, match="INTEREST_DASHBOARD_FEED_MAX_PER_S must be >= 0"):
        Settings.from_env({"INTEREST_DASHBOARD_FEED_MAX_PER_S": "-1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INTEREST_SHORT_HALF_LIFE_S": "0"}, "INTEREST_SHORT_HALF_LIFE_S must be > 0"),
        ({"INTEREST_LONG_HALF_LIFE_S": "nan"}, "INTEREST_LONG_HALF_LIFE_S must be a finite"),
        ({"INTEREST_POPULATION_HALF_LIFE_S": "-1"}, "INTEREST_POPULATION_HALF_LIFE_S must be > 0"),
        ({"INTEREST_PRIOR_STRENGTH": "-1"}, "INTEREST_PRIOR_STRENGTH must be >= 0"),
        ({"INTEREST_MAX_CATEGORIES": "0"}, "INTEREST_MAX_CATEGORIES must be 1 or more"),
        ({"INTEREST_MAX_PAYLOAD": "0"}, "INTEREST_MAX_PAYLOAD must be 1 or more"),
        ({"INTEREST_LATENESS_S": "-1"}, "INTEREST_LATENESS_S must be >= 0"),
        ({"INTEREST_MAX_FUTURE_S": "nan"}, "INTEREST_MAX_FUTURE_S must be a finite"),
        ({"INTEREST_COMMIT_INTERVAL_S": "0"}, "INTEREST_COMMIT_INTERVAL_S must be > 0"),
        ({"INTEREST_BATCH": "0"}, "INTEREST_BATCH must be 1 or more"),
        ({"INTEREST_MIN_INTERVAL_S": "inf"}, "INTEREST_MIN_INTERVAL_S must be a finite"),
        ({"INTEREST_TV_THRESHOLD": "1.5"}, "INTEREST_TV_THRESHOLD must be from 0 to 1"),
        ({"INTEREST_TOP_K": "0"}, "INTEREST_TOP_K must be 1 or more"),
        ({"INTEREST_SCORER_BATCH": "0"}, "INTEREST_SCORER_BATCH must be 1 or more"),
        ({"INTEREST_SCORER_MS": "0"}, "INTEREST_SCORER_MS must be > 0"),
        ({"INTEREST_WEB_PORT": "65536"}, "INTEREST_WEB_PORT must be a port"),
        ({"INTEREST_WEB_TOKEN": ""}, "INTEREST_WEB_TOKEN is set but blank"),
        ({"INTEREST_PSEUDONYMISE_KEY": " "}, "INTEREST_PSEUDONYMISE_KEY is set but blank"),
        ({"INTEREST_EVENTS_TOPIC": " "}, "INTEREST_EVENTS_TOPIC must not be empty"),
        ({"INTEREST_SCORER_PROCESS": "maybe"}, "INTEREST_SCORER_PROCESS must be 1/0"),
        ({"INTEREST_SCORER_NICE": "20"}, "INTEREST_SCORER_NICE must be idle or 0–19, got 20"),
        ({"INTEREST_SCORER_NICE": "lowest"}, "INTEREST_SCORER_NICE"),
        ({"KAFKA_SECURITY_PROTOCOL": "bogus"}, "KAFKA_SECURITY_PROTOCOL must be PLAINTEXT or"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE: no such file"),
        ({"KAFKA_SSL_KEYFILE": "/nonexistent/k.pem"}, "KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE"),
        ({"INTEREST_WEIGHTS": "purchse=5"}, "INTEREST_WEIGHTS names an unknown event type"),
        ({"INTEREST_WEIGHTS": "view=-1"}, "INTEREST_WEIGHTS view's weight must be >= 0"),
        (
            {"INTEREST_WEIGHTS": "view=0,click=0,cart=0,fav=0,purchase=0,rate=0"},
            "every event type a weight of 0",
        ),
        ({"INTEREST_DLQ_TOPIC": "interest.events"}, "the topics must be four different ones"),
        (
            {"INTEREST_SHORT_HALF_LIFE_S": "100", "INTEREST_LONG_HALF_LIFE_S": "10"},
            "INTEREST_LONG_HALF_LIFE_S must be >= INTEREST_SHORT_HALF_LIFE_S",
        ),
    ],
)
def test_nonsense_values_are_refused_with_the_variable_named(env, message):
    with pytest.raises(ValueError) as exc:
        Settings.from_env(env)
    assert message in str(exc.value)


def test_what_is_still_accepted_reads_as_documented():
    s = Settings.from_env(
        {
            "INTEREST_SCORER_PROCESS": "OFF",
            "INTEREST_SCORER_INT8": " True ",
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "p",
            "INTEREST_WEIGHTS": "pv=3,buy=0",  # aliases name their event types
            "INTEREST_MIN_INTERVAL_S": "0",
            "INTEREST_TV_THRESHOLD": "1",
            "INTEREST_POPULATION_SHORT_HALF_LIFE_S": "0",
            "INTEREST_SCORER_NICE": " IDLE ",
        }
    )
    assert s.scorer_process is False and s.scorer_int8 is True and s.scorer_nice == "idle"
    assert Settings.from_env({"INTEREST_SCORER_NICE": "5"}).scorer_nice == 5
    assert s.security.protocol == "SASL_SSL"
    assert s.interest.event_weights["view"] == 3.0 and s.interest.event_weights["purchase"] == 0.0
