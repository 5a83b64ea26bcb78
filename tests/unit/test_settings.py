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
CHANGED_TEXT = {"INTEREST_WEIGHTS": "cart=5"}
TEXTS = ("1", "0", "3", "0.25", "json", "rocksdb://", "x-topic", "h:1", "SCRAM-SHA-256", "SASL_SSL")


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
                    got = reached(f, attr, {var.name: text})
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
