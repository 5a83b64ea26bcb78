"""``python -m stream.dev.estimator_cost``: the estimator's cost per event, with C and without."""

from __future__ import annotations

import pytest

from models import history
from models.online import masses
from stream.dev.estimator_cost import measure, run_variant

pytestmark = pytest.mark.unit

PARTS = ("own_distribution", "own_top", "top_horizons", "predict_top", "snapshot_of")
RECORD = ("history_append", "population_learn", "record_encode", "record_decode")


def test_measure_times_every_step_of_an_event_and_of_a_snapshot():
    got = measure(users=40, history=5, events=200)
    assert got["c"] is (masses._masses is not None)
    assert got["history_c"] is (history._history is not None)
    assert 0 < got["apply_us"] < got["apply_build_us"]  # a build costs tens of µs
    assert got["apply_build_pack_us"] > got["apply_us"]
    assert all(got[f"{p}_us"] > 0 for p in PARTS + RECORD)
    assert got["history_append_us"] < got["apply_us"]  # a part of it


def test_the_python_variant_runs_without_the_c_extensions():
    got = run_variant("python", users=20, history=3, events=60)
    assert got["c"] is False and got["history_c"] is False and got["history_append_us"] > 0
