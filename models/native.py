"""Python definitions run by C functions of the same name, where the extension is built.

The project's C extensions (``models._masses``, ``models._history``) are optional: without a
C compiler at install the package runs the Python definitions, which stay the specification
(the C ones give the same results bit for bit: ``tests/unit/test_masses_c.py``,
``tests/unit/test_history_c.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def accelerated_by(native: ModuleType | None) -> Callable[[F], F]:
    """A decorator: the function, run by ``native``'s function of the same name when
    ``native`` is built (not None).

    The C one takes only the exact types it is written for and raises ``TypeError`` for
    anything else (a Mapping, an int mass), and then the Python definition runs, so results
    keep their types. Either definition stays reachable: ``.python`` and ``.fast`` (None if
    not built).

    >>> @accelerated_by(None)
    ... def double(x):
    ...     return 2 * x
    >>> double(2), double.python is double, double.fast
    (4, True, None)
    """

    def decorate(python: F) -> F:
        fast = getattr(native, python.__name__, None)
        if fast is None:
            python.python, python.fast = python, None
            return python

        @functools.wraps(python)
        def call(*args):
            try:
                return fast(*args)
            except TypeError:
                return python(*args)

        call.python, call.fast = python, fast
        return call  # type: ignore[return-value]

    return decorate
