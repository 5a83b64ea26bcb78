"""``SurpriseDrift`` is River's one-sided Page-Hinkley test, without importing ``river.drift``."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from river import drift

from models.online.drift import SurpriseDrift

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seed", range(5))
def test_same_detections_and_state_as_rivers_page_hinkley(seed: int):
    rng = random.Random(seed)
    ours = SurpriseDrift(min_instances=8, delta=0.5, threshold=8.0)
    rivers = drift.PageHinkley(min_instances=8, delta=0.5, threshold=8.0, alpha=1.0, mode="up")
    xs = [rng.expovariate(1.0) * (4.0 if 300 < i < 400 else 1.0) for i in range(1000)]
    flags = []
    for x in xs:
        ours.update(x)
        rivers.update(x)
        assert ours.drift_detected == rivers.drift_detected
        assert ours._sum_increase == pytest.approx(rivers._sum_increase, abs=1e-12)
        assert ours._min_increase == pytest.approx(rivers._min_increase, abs=1e-12)
        flags.append(ours.drift_detected)
    assert any(flags), "the shift at 300 should be detected"


def test_the_worker_imports_neither_scikit_learn_nor_scipy_stats():
    code = (
        "import sys, stream.app, stream.cli; "
        "print(sorted(m for m in ('sklearn', 'scipy.stats', 'river.drift') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
