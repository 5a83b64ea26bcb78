"""Equality for checking a C definition against its Python specification."""

from __future__ import annotations

import math


def same(a, b) -> bool:
    """Equal and of the same types, floats bit for bit (the sign of zero too), dicts in the
    same order, nested alike.

    >>> same({"a": [0.0, 1]}, {"a": [0.0, 1]}), same([0.0], [-0.0]), same((1,), [1])
    (True, False, False)
    """
    if isinstance(a, dict):
        return type(b) is type(a) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(b) is type(a) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return type(b) is float and a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b
