"""Settings declared once: a dataclass field carries its environment variable, its parser and
its help; reading the environment and the documentation tables are derived from the fields.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     port: int = setting("DEMO_PORT", 80, "where to listen", parse=whole_number)
>>> from_environ(Demo, {"DEMO_PORT": "8080"}).port, from_environ(Demo, {}).port
(8080, 80)
>>> rows(Demo)
[('DEMO_PORT', '`80`', 'where to listen')]
>>> from_environ(Demo, {"DEMO_PORT": "x"})
Traceback (most recent call last):
stream.envvars.SettingsError: DEMO_PORT must be a whole number, got 'x'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

UNSET = "unset"


class SettingsError(ValueError):
    """A variable's value is not one the setting can take (the message names the variable).

    >>> from stream.settings import Settings
    >>> try:
    ...     Settings.from_env({"INTEREST_SCORER_BATCH": "lots"})
    ... except ValueError as err:  # a SettingsError is a ValueError
    ...     print(type(err).__name__, "|", err)
    SettingsError | INTEREST_SCORER_BATCH must be a whole number, got 'lots'
    >>> Settings.from_env({"INTEREST_DLQ_TOPIC": "interest.events"})  # dead letters as events
    Traceback (most recent call last):
    ...
    stream.envvars.SettingsError: the topics must be four different ones, got INTEREST_EVENTS...
    """


Declared = tuple[str, "EnvVar", Any]  # (attribute, variable, default)


@dataclass(frozen=True)
class EnvVar:
    """How one setting is read: variable name, parser of its text, help, shown default.

    >>> from stream.settings import INTEREST_VARIABLES, Settings
    >>> attribute, var = INTEREST_VARIABLES[1]  # one of the worker's settings
    >>> attribute, var.name, var.parse("600")
    ('short_half_life', 'INTEREST_SHORT_HALF_LIFE_S', 600.0)
    >>> Settings.from_env({var.name: "600"}).interest.short_half_life
    600.0
    >>> Settings.from_env({var.name: "-5"})
    Traceback (most recent call last):
    ...
    stream.envvars.SettingsError: INTEREST_SHORT_HALF_LIFE_S must be > 0, got -5
    """

    name: str
    parse: Callable[[str], Any]
    help: str
    shown: str | None = None  # the default as documented, when the value itself does not say


def setting(
    env: str,
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any],
    shown: str | None = None,
    **field_options: Any,
) -> Any:
    """A dataclass field read from ``env`` with ``parse``; ``default`` when it is not set
    (``dataclasses.MISSING``: the field must be given)."""
    meta = {"env": EnvVar(env, parse, help, shown)}
    return dataclasses.field(default=default, metadata=meta, **field_options)


def env_text(
    env: str, default: str, help: str, parse: Callable[[str], str] | None = None, **options: Any
) -> Any:
    return setting(env, default, help, parse=parse or text, **options)


def env_int(
    env: str, default: int, help: str, parse: Callable[[str], int] | None = None, **options: Any
) -> Any:
    """A whole-number setting (``parse``: a stricter parser, e.g. :func:`positive_whole`)."""
    return setting(env, default, help, parse=parse or whole_number, **options)


def env_float(
    env: str, default: float, help: str, parse: Callable[[str], float] | None = None, **options: Any
) -> Any:
    """A number setting (``parse``: a stricter parser, e.g. :func:`positive_number`)."""
    return setting(env, default, help, parse=parse or number, **options)


def env_flag(env: str, default: bool, help: str, **field_options: Any) -> Any:
    return setting(env, default, help, parse=flag, **field_options)


def env_optional(env: str, help: str, **field_options: Any) -> Any:
    """A setting that is unset (None) unless its variable holds text."""
    return setting(env, None, help, parse=optional_text, **field_options)


def nested(cls: type, variables: tuple[tuple[str, EnvVar], ...] = (), **field_options: Any) -> Any:
    """A dataclass field holding a ``cls`` built from ``variables`` ((attribute, variable)
    pairs), or from ``cls``'s own :func:`setting` fields when none are given."""
    meta = {"nested": (cls, variables)}
    return dataclasses.field(default_factory=cls, metadata=meta, **field_options)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _declared(f: dataclasses.Field) -> Iterator[Declared]:
    """The settings one field stands for: itself, or those of the object it nests."""
    if "env" in f.metadata:
        yield f.name, f.metadata["env"], _default(f)
    elif "nested" in f.metadata:
        inner, variables = f.metadata["nested"]
        if not variables:
            for g in dataclasses.fields(inner):
                yield from _declared(g)
            return
        base = inner()
        for attr, var in variables:
            yield attr, var, getattr(base, attr)


def _read(declarations: Iterable[Declared], env: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for attr, var, _ in declarations:
        if var.name in env:
            try:
                out[attr] = var.parse(env[var.name])
            except ValueError as exc:
                raise SettingsError(f"{var.name} {exc}") from None
    return out


def from_environ(
    cls: type, env: Mapping[str, str], fallbacks: Mapping[str, Callable[[], Any]] | None = None
) -> Any:
    """An instance of ``cls``: each setting from its variable when set, else its default;
    ``fallbacks`` compute the value of a field that its variable leaves unset or empty."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if "env" in f.metadata:
            kwargs.update(_read(_declared(f), env))
        elif "nested" in f.metadata:
            kwargs[f.name] = f.metadata["nested"][0](**_read(_declared(f), env))
    for name, compute in (fallbacks or {}).items():
        if kwargs.get(name) is None:
            kwargs[name] = compute()
    return cls(**kwargs)


def shown_default(value: Any, var: EnvVar) -> str:
    """The default as the documentation shows it: `` `4` ``, `` `1.5` ``, ``unset``."""
    if var.shown is not None:
        return var.shown
    if value is None:
        return UNSET
    if isinstance(value, Mapping):
        return "`" + ",".join(f"{k}={_number(v)}" for k, v in value.items()) + "`"
    return f"`{_number(value) if isinstance(value, int | float) else value}`"


def _number(value: float) -> str:
    """``2`` for 2.0, ``0`` for False, ``0.2`` for 0.2."""
    return str(int(value)) if float(value).is_integer() else str(value)


def rows(cls: type) -> list[tuple[str, str, str]]:
    """(variable, shown default, help) of every setting of ``cls``, nested ones included."""
    return [
        (var.name, shown_default(default, var), var.help)
        for f in dataclasses.fields(cls)
        for _, var, default in _declared(f)
    ]


def markdown_table(cls: type) -> str:
    """The settings of ``cls`` as a Markdown table (variable, default, meaning)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {default} | {help} |" for name, default, help in rows(cls)]
    return "\n".join(lines) + "\n"


def docstring_list(cls: type, indent: str = "        ") -> str:
    """The settings of ``cls`` as a list for a docstring (its first line not indented)."""
    return f"\n{indent}".join(
        f"- {name}: {help} (default {default})" for name, default, help in rows(cls)
    )


# -- parsers: each raises ValueError with a message that reads after the variable's name ----
def text(value: str) -> str:
    return value


def optional_text(value: str) -> str | None:
    """The text, or None when empty."""
    return value or None


def secret(value: str) -> str:
    """A key or token that turns a protection on. Set but blank (a deployment's secret that
    resolved to nothing) is refused rather than read as unset, which would turn it off."""
    if not value.strip():
        raise ValueError("is set but blank: give it a value, or unset it to turn it off")
    return value


def upper_text(value: str) -> str:
    return value.upper()


def _converted(kind: Callable[[str], Any], what: str, value: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"must be {what}, got {value!r}") from None


def whole_number(value: str) -> int:
    return _converted(int, "a whole number", value)


def number(value: str) -> float:
    return _converted(float, "a number", value)


def checked(parse: Callable[[str], Any], ok: Callable[[Any], bool], requirement: str) -> Any:
    """``parse``, then refuse a value that fails ``ok`` ("must be <requirement>").

    >>> checked(whole_number, lambda n: n > 2, "above 2")("1")
    Traceback (most recent call last):
    ValueError: must be above 2, got 1
    """

    def parse_checked(value: str) -> Any:
        parsed = parse(value)
        if not ok(parsed):
            raise ValueError(f"must be {requirement}, got {value.strip()}")
        return parsed

    return parse_checked


non_negative_whole = checked(whole_number, lambda n: n >= 0, "0 or more")
positive_whole = checked(whole_number, lambda n: n >= 1, "1 or more")
port = checked(whole_number, lambda n: 1 <= n <= 65535, "a port, 1–65535")
finite_number = checked(number, math.isfinite, "a finite number")
positive_number = checked(finite_number, lambda x: x > 0, "> 0")
non_negative_number = checked(finite_number, lambda x: x >= 0, ">= 0")
fraction = checked(finite_number, lambda x: 0 <= x <= 1, "from 0 to 1")


def non_empty_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


ON, OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def flag(value: str) -> bool:
    """``1``, ``true``, ``yes`` or ``on`` is on; ``0``, ``false``, ``no``, ``off`` or empty is
    off (any case); anything else is refused.

    >>> flag("True"), flag("off")
    (True, False)
    """
    picked = value.strip().lower()
    if picked not in ON + OFF:
        raise ValueError(f"must be 1/0, true/false, yes/no or on/off, got {value!r}")
    return picked in ON


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser accepting one of ``allowed`` (any case, surrounding spaces ignored; returned
    in the case ``allowed`` has it)."""
    by_case = {a.lower(): a for a in allowed}

    def parse(value: str) -> str:
        picked = by_case.get(value.strip().lower())
        if picked is None:
            raise ValueError(f"must be {' or '.join(allowed)}, got {value!r}")
        return picked

    return parse
