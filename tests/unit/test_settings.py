"""Settings are declared once: the README's table, the docstring and ``from_env`` agree."""

import inspect

import pytest

from stream.dev.settings_table import readme_table
from stream.envvars import markdown_table, rows
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


def test_every_declared_variable_is_read():
    env = {
        "INTEREST_PARTITIONS": "7",
        "INTEREST_SHORT_HALF_LIFE_S": "60",
        "KAFKA_SASL_USERNAME": "u",
        "INTEREST_SCORER_INT8": "1",
        "KAFKA_BOOTSTRAP_SERVERS": "h:1",
    }
    s = Settings.from_env(env)
    assert (s.partitions, s.interest.short_half_life, s.security.sasl_username) == (7, 60.0, "u")
    assert s.scorer_int8 is True and s.bootstrap == "h:1"


def test_a_bad_value_names_its_variable():
    with pytest.raises(ValueError, match="INTEREST_PARTITIONS must be a whole number"):
        Settings.from_env({"INTEREST_PARTITIONS": "four"})


def test_the_dashboard_feed_can_be_turned_off_but_not_below_zero():
    assert (
        Settings.from_env({"INTEREST_DASHBOARD_FEED_MAX_PER_S": "0"}).dashboard_feed_max_per_s == 0
    )
    with pytest.raises(ValueError, match="INTEREST_DASHBOARD_FEED_MAX_PER_S must be >= 0"):
        Settings.from_env({"INTEREST_DASHBOARD_FEED_MAX_PER_S": "-1"})
