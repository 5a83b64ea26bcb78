"""The C arithmetic of ``models/_masses.c``: ``masses.py``'s, bit for bit."""

from __future__ import annotations

import copy
import pickle
import random
import shutil
import types
from collections import OrderedDict
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.online import masses, user
from models.online.config import InterestConfig
from models.online.drift import SurpriseDrift
from models.online.population import PopulationInterest, learn_population
from models.online.user import UserInterest, interest_tops, learn_event, restore_interest
from models.schema import OTHER
from stream.dev.events import interleaved_events
from tests.unit.bitwise import same

pytestmark = pytest.mark.unit

ACCELERATED = (
    "top_k",
    "top_smoothed",
    "rank_smoothed",
    "fused_rank",
    "mix_horizons",
    "smoothed_tracked",
    "total_variation",
    "entropy",
    "add_mass",
    "mean_surprise",
    "snapshot_tops",
)

built = pytest.mark.skipif(masses._masses is None, reason="models._masses is not built")


def both(name: str, *args):
    """The C and the Python definition of ``name`` on the same arguments."""
    fn = getattr(masses, name)
    return fn.fast(*args), fn.python(*args)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: masses.py runs in Python")
def test_the_install_builds_the_c_arithmetic():
    assert masses._masses is not None, "pip install -e . did not build models._masses"
    for name in ACCELERATED:
        assert getattr(masses, name).fast is not None, name
    assert learn_event.fast is not None
    assert restore_interest.fast is not None


# Few names and few values: ties (broken by name) are common, as in a user's masses after
# events with several categories.
names = st.sampled_from(["a", "b", "c", "d", "e", "shoes", "bags", "é", "Z", OTHER])
masses_ = st.floats(min_value=0.0, max_value=50.0, allow_nan=False) | st.sampled_from(
    [0.0, 0.25, 0.5, 1.0, 3.0]
)
dicts = st.dictionaries(names.filter(lambda c: c != OTHER), masses_, max_size=9)
dists = st.dictionaries(names, masses_, max_size=9)
ks = st.integers(min_value=0, max_value=12)
small = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@built
@settings(max_examples=300, deadline=None)
@given(dists, ks)
def test_top_k(p, k):
    assert same(*both("top_k", p, k))


@built
@settings(max_examples=300, deadline=None)
@given(dicts, small, st.floats(min_value=0.01, max_value=5.0), ks)
def test_top_smoothed(m, residual, alpha, k):
    assert same(*both("top_smoothed", m, residual, alpha, k))


@built
@settings(max_examples=300, deadline=None)
@given(
    dicts, small, dicts, st.lists(names.filter(lambda c: c != OTHER), max_size=12, unique=True), ks
)
def test_rank_smoothed(tracked, coef, prior, ranked, k):
    assert same(*both("rank_smoothed", tracked, coef, prior, ranked, k))


@built
@settings(max_examples=300, deadline=None)
@given(
    dicts,
    small,
    dicts,
    st.lists(names.filter(lambda c: c != OTHER), max_size=12, unique=True),
    st.integers(min_value=0, max_value=12),
    dists,
    st.floats(min_value=0.0, max_value=1.0),
    ks,
)
def test_fused_rank(tracked, coef, prior, ranked, depth, sequence, w, k):
    ranked_set = frozenset(ranked[:depth])  # the prior's ranked set, ranked or not
    assert same(*both("fused_rank", tracked, coef, prior, ranked, ranked_set, sequence, w, k))


@built
@settings(max_examples=300, deadline=None)
@given(dicts, dicts, st.floats(min_value=0.0, max_value=1.0), small, small, small, small)
def test_mix_horizons(short, long_, ws, short_res, long_res, a_short, a_long):
    a_short, a_long = a_short + 0.01, a_long + 0.01  # the pseudo-counts are positive
    horizons = (short, long_, ws, short_res, long_res, a_short, a_long)
    assert same(*both("mix_horizons", horizons))


@built
@settings(max_examples=300, deadline=None)
@given(dicts, dicts, st.floats(min_value=0.0, max_value=1.0), small, small, small, small, dicts)
def test_smoothed_tracked(short, long_, ws, short_res, long_res, a_short, a_long, prior):
    total = sum(prior.values())
    prior = {c: p / total for c, p in prior.items()} if total else prior
    horizons = (short, long_, ws, short_res, long_res, a_short + 0.01, a_long + 0.01)
    assert same(*both("smoothed_tracked", horizons, prior))


@built
@settings(max_examples=300, deadline=None)
@given(
    dists,
    dicts,
    dicts,
    st.floats(min_value=0.0, max_value=1.0),
    small,
    small,
    small,
    small,
    st.none() | dicts,
    st.lists(names.filter(lambda c: c != OTHER), max_size=12, unique=True),
    ks,
)
def test_snapshot_tops(
    own, short, long_, ws, short_res, long_res, a_short, a_long, prior, ranked, k
):
    parts = (short, long_, ws, short_res, long_res, a_short + 0.01, a_long + 0.01)
    smoothing = (short, long_, ws, short_res, long_res, a_short + 0.5, a_long + 0.5)
    if prior:
        total = sum(prior.values())
        prior = {c: p / total for c, p in prior.items()} if total else prior
    fast, python = both("snapshot_tops", own, parts, smoothing, prior, ranked, k)
    assert same(fast, python)
    assert fast[3] is not fast[0]  # the estimate is a dict of its own, even a copy


@built
@settings(max_examples=300, deadline=None)
@given(dists, dists)
def test_total_variation_and_entropy(p, q):
    assert same(*both("total_variation", p, q))
    assert same(*both("entropy", p))


@built
@settings(max_examples=300, deadline=None)
@given(dicts, small, st.lists(names.filter(lambda c: c != OTHER), max_size=4), small, ks)
def test_add_mass(m, residual, cats, w, cap):
    fast_masses, python_masses = dict(m), dict(m)
    if not cats:
        for fn, masses_ in ((masses.add_mass.fast, fast_masses), (masses.add_mass.python, m)):
            with pytest.raises(ZeroDivisionError):
                fn(masses_, residual, cats, w, cap)
        return
    fast = masses.add_mass.fast(fast_masses, residual, cats, w, cap)
    python = masses.add_mass.python(python_masses, residual, cats, w, cap)
    assert same(fast, python)
    assert same(fast_masses, python_masses)


def test_add_mass_refused_by_the_c_code_changes_nothing_before_the_python_definition_runs():
    m = {"a": 1.0, "b": 2}  # an int mass: the C refuses it when an eviction must scan it
    assert masses.add_mass(m, 0.0, ["c"], 1.0, 2) == 1.0  # "a" evicted, by the Python definition
    assert m == {"b": 2, "c": 1.0}
    m = {"a": 1.0}
    assert masses.add_mass(m, 0.0, ["a", 7], 1.0, 5) == 0.0  # a non-str category
    assert m == {"a": 1.5, 7: 0.5}


@built
@settings(max_examples=300, deadline=None)
@given(dists, st.lists(names, min_size=1, max_size=4), st.floats(min_value=1.0, max_value=200.0))
def test_mean_surprise(p, cats, spread):
    p = {**p, OTHER: p.get(OTHER, 0.5)}
    assert same(*both("mean_surprise", p, cats, spread))


FIELD_TYPES = (types.MemberDescriptorType, types.GetSetDescriptorType)


def fields(obj: object) -> dict:
    """Every attribute of ``obj``: those its C layout holds (``masses.InterestFields`` and
    the other fields types) and any in its ``__dict__``."""
    names = [
        n
        for base in type(obj).__mro__
        for n, v in vars(base).items()
        if isinstance(v, FIELD_TYPES) and not n.startswith("__")
    ]
    held = {n: getattr(obj, n) for n in names if hasattr(obj, n)}
    return {**held, **getattr(obj, "__dict__", {})}


def attributes(u: UserInterest) -> dict:
    """An estimator's every attribute, its drift detector's too, caches included."""
    return {**fields(u), "_drift": fields(u._drift)}


def inside(u: UserInterest) -> dict:
    """``attributes`` without the config objects."""
    return {**attributes(u), "_cfg": None, "config": None}


@built
def test_an_estimator_keeps_its_attributes_in_its_c_fields():
    u = UserInterest()
    for ts in (1.0, 2.0):
        u.learn_and_predict({"categories": ["a"], "event_type": "view", "ts": ts})
    assert isinstance(u, masses.InterestFields) and isinstance(u._drift, masses.DriftFields)
    assert vars(u) == {} and vars(u._drift) == {}  # no instance dict: the fields hold it all
    assert len(fields(u)) == 16 and len(fields(u._drift)) == 9
    v = UserInterest.__new__(UserInterest)
    with pytest.raises(AttributeError):  # a field not set reads as a missing attribute
        getattr(v, "_n")  # noqa: B009
    with pytest.raises(TypeError):  # and the C learning refuses it: Python's error follows
        learn_event.fast(v, {"categories": ["a"], "event_type": "view", "ts": 1.0})
    with pytest.raises(AttributeError):
        learn_event(v, {"categories": ["a"], "event_type": "view", "ts": 1.0})


@built
def test_number_fields_hold_what_python_sets_them_to():
    u = UserInterest()
    u._t = 5  # an int where a float is kept reads back as that float
    assert u._t == 5.0 and type(u._t) is float and u.last_ts == 5.0
    u._t = None
    assert u._t is None
    u._drift_now = 1  # a flag: its truth
    assert u._drift_now is True and u.drift_detected is True
    u._drift._count = 2
    assert u._drift._count == 2.0 and type(u._drift._count) is float
    for name, value in (("_t", "5"), ("_n", 1.5), ("_short_res", None), ("_nr", None)):
        with pytest.raises(TypeError, match=name):
            setattr(u, name, value)
    del u._n
    assert not hasattr(u, "n_events")
    with pytest.raises(AttributeError):
        del u._n
    u._n = 3
    assert u.n_events == 3


@built
def test_a_population_keeps_its_attributes_in_its_c_fields():
    pop = PopulationInterest()
    for i, ts in enumerate((1.0, 2.0, 3.0)):
        pop.learn_one({"categories": [f"c{i}"], "event_type": "view", "ts": ts}, user_events=i)
    assert isinstance(pop, masses.PopulationFields)
    assert all(isinstance(c, masses.CountsFields) for c in (pop._long, pop._short))
    assert vars(pop) == {} and not hasattr(pop._long, "__dict__")
    assert len(fields(pop)) == 8 and len(fields(pop._long)) == 7
    assert pop.n_events == 3 and pop.last_ts == 3.0 and pop._long.ref == 1.0
    pop._long.ref = None  # an optional time
    assert pop._long.ref is None
    with pytest.raises(TypeError, match="total"):
        pop._long.total = "1"
    with pytest.raises(TypeError):  # a horizon without the C layout: the Python definition
        learn_population.fast(
            PopulationInterest.__new__(PopulationInterest),
            {"categories": ["a"], "event_type": "view", "ts": 1.0},
            0,
        )


def test_a_population_pickles_and_copies():
    pop = PopulationInterest(InterestConfig(population_short_half_life=10.0))
    for i, ts in enumerate((1.0, 2.0, 9.0)):
        pop.learn_one({"categories": [f"c{i % 2}"], "event_type": "cart", "ts": ts}, user_events=0)
    for other in (pickle.loads(pickle.dumps(pop)), copy.deepcopy(pop), copy.copy(pop)):
        assert other.state() == pop.state() and other.config == pop.config
        assert other.predict_proba_one() == pop.predict_proba_one()
    counts = pickle.loads(pickle.dumps(pop._long))
    assert (counts.masses, counts.ref, counts.total) == (
        pop._long.masses,
        pop._long.ref,
        pop._long.total,
    )


def test_an_estimator_pickles_and_copies():
    u = UserInterest(InterestConfig(max_categories=3))
    for i, ts in enumerate((1.0, 2.0, 9.0)):
        u.learn_one({"categories": [f"c{i}"], "event_type": "cart", "ts": ts})
    for other in (pickle.loads(pickle.dumps(u)), copy.deepcopy(u), copy.copy(u)):
        assert other.state() == u.state() and other.config == u.config
        assert type(other._drift) is SurpriseDrift
        x = {"categories": ["c9"], "event_type": "view", "ts": 10.0}
        expected = UserInterest.from_state(u.state(), u.config).learn_and_predict(x)
        assert same(other.learn_and_predict(x), expected)
    d = pickle.loads(pickle.dumps(u._drift))
    assert d.get_state() == u._drift.get_state() and d.threshold == u._drift.threshold


CONFIGS = [
    InterestConfig(),
    InterestConfig(  # ints where floats are usual, no per-event decay, an eager drift test
        max_categories=3,
        short_half_life=60,
        short_event_half_life=0,
        long_event_half_life=0,
        other_strength=2,
        drift_min_instances=2,
        drift_delta=0.0,
        drift_threshold=0.5,
        drift_settle_events=3,
        event_weights={"view": 1, "cart": 2.5},
        # the population's: small caps (evictions), short half-lives (rebases)
        population_max_categories=3,
        population_half_life=50,
        population_short_half_life=5.0,
        population_cold_events=2,
        population_mix_memory=10,
        population_smoothing=0.5,
    ),
    InterestConfig(population_short_half_life=0.0),  # one population horizon
]
event_steps = st.lists(
    st.tuples(
        st.lists(names.filter(lambda c: c != OTHER), min_size=1, max_size=4),
        st.sampled_from(["view", "cart", "purchase"]),
        # seconds since the user's latest event: late ones, bursts, gaps that rebase the masses
        st.sampled_from([0.0, 1.0, 30.0, -50.0, 4000.0, 3.0e6, 2.0e9]) | st.floats(-100, 1e5),
        st.none() | st.sampled_from([0.5, 2.0]),
    ),
    min_size=1,
    max_size=40,
)


def events_of(steps: list, cfg: InterestConfig) -> Iterator[tuple[dict, bool]]:
    """The events of ``event_steps``, each with whether the C definitions refuse it (a type
    the weights do not name: the Python definition's lookup of canonical names)."""
    ts = 1000.0
    for cats, event_type, dt, weight in steps:
        ts += dt
        x = {"categories": cats, "event_type": event_type, "ts": ts}
        if weight is not None:
            x["weight"] = weight
        yield x, event_type not in cfg.event_weights and weight is None


@built
@settings(max_examples=200, deadline=None)
@given(event_steps, st.sampled_from(range(len(CONFIGS))))
def test_learn_event(steps, config):
    """Event by event, the C definition leaves the estimator (state and caches) as the Python
    one does and returns the same, bit for bit; caches read between events included."""
    fast, python = UserInterest(CONFIGS[config]), UserInterest(CONFIGS[config])
    for i, (x, refused) in enumerate(events_of(steps, CONFIGS[config])):
        if refused:
            with pytest.raises(TypeError):
                learn_event.fast(fast, x)
            assert same(inside(fast), inside(python))
        got = learn_event(fast, x)
        assert same(got, learn_event.python(python, x)), i
        assert same(inside(fast), inside(python)), i
        if i % 3 == 1:  # snapshots between events fill the caches the next event reads
            assert same(interest_tops(fast, 3, None, ()), interest_tops.python(python, 3, None, ()))
            assert same(inside(fast), inside(python)), i


prior_steps = st.dictionaries(names.filter(lambda c: c != OTHER), st.floats(0.01, 1.0), max_size=6)


@built
@settings(max_examples=200, deadline=None)
@given(event_steps, st.sampled_from(range(len(CONFIGS))), prior_steps, st.integers(0, 5))
def test_interest_tops(steps, config, prior, k):
    """A snapshot's numbers of an estimator: the C definition returns what the Python one
    does and sets the same caches, bit for bit, whichever caches the event left or a
    snapshot before it filled; with a prior and without."""
    total = sum(prior.values())
    prior = {c: p / total for c, p in prior.items()} or None
    ranked = sorted(prior or (), key=lambda c: (-prior[c], c))
    fast, python = UserInterest(CONFIGS[config]), UserInterest(CONFIGS[config])
    for i, (x, _) in enumerate(events_of(steps, CONFIGS[config])):
        assert same(learn_event(fast, x), learn_event.python(python, x)), i
        if i % 2:  # a cold cache: a record just decoded
            for u in (fast, python):
                u._own = u._scales = u._own_top = None
        got = interest_tops(fast, k, prior, ranked)
        assert same(got, interest_tops.python(python, k, prior, ranked)), i
        assert same(inside(fast), inside(python)), i
    assert fast._own_top[0] == k


def population_inside(pop: PopulationInterest) -> dict:
    """A population's every attribute, its two horizons' too (caches included)."""
    horizons = {
        name: {k: v for k, v in fields(counts).items() if k != "_dense"}
        for name, counts in (("_long", pop._long), ("_short", pop._short))
    }
    return {**fields(pop), **horizons, "_cfg": None, "config": None}


@built
@settings(max_examples=200, deadline=None)
@given(
    event_steps,
    st.sampled_from(range(len(CONFIGS))),
    st.lists(st.none() | st.integers(0, 4), min_size=40, max_size=40),
)
def test_learn_population(steps, config, user_events):
    """Event by event, the C definition leaves the population as the Python one does: masses,
    residuals, totals, references, scores, counts, bit for bit."""
    fast, python = PopulationInterest(CONFIGS[config]), PopulationInterest(CONFIGS[config])
    fast._long.dense({"a": 0}, None, 1.0)  # a dense() cache an eviction must drop
    python._long.dense({"a": 0}, None, 1.0)
    for i, (x, refused) in enumerate(events_of(steps, CONFIGS[config])):
        if refused:
            with pytest.raises(TypeError):
                learn_population.fast(fast, x, user_events[i])
        learn_population(fast, x, user_events[i])
        learn_population.python(python, x, user_events[i])
        assert same(population_inside(fast), population_inside(python)), i
    assert same(fast.predict_smoothed(), python.predict_smoothed())


@built
def test_learn_population_refused_by_the_c_code_changes_nothing():
    pop = PopulationInterest()
    learn_population(pop, {"categories": ["a"], "event_type": "view", "ts": 5.0}, 0)
    x = {"categories": ["a"], "event_type": "view", "ts": 6.0}
    refused = [
        ({**x, "ts": 6}, 0),  # an int time
        ({**x, "categories": ("a", 1)}, 0),
        ({**x, "categories": []}, 0),
        (x, 0.5),  # a float count of the user's events
        (OrderedDict(x), 0),
    ]
    for event, user_events in refused:
        before = copy.deepcopy(population_inside(pop))
        with pytest.raises(TypeError):
            learn_population.fast(pop, event, user_events)
        assert same(population_inside(pop), before), event
    pop._scores[1] = 1  # an int score: refused before anything changes
    before = copy.deepcopy(population_inside(pop))
    with pytest.raises(TypeError):
        learn_population.fast(pop, x, 0)
    assert same(population_inside(pop), before)
    learn_population(pop, x, 0)  # the Python definition takes it
    assert pop.n_events == 2


@built
def test_learn_population_reads_only_the_event_s_masses_unless_it_rebases_them_all():
    """An int mass of another category: the C takes a cold event that reads only the event's
    entries (as the Python does), and refuses, unchanged, one late enough to rebase them all."""
    fast, python = (PopulationInterest(CONFIGS[1]) for _ in range(2))
    for pop in (fast, python):
        learn_population(pop, {"categories": ["a", "b"], "event_type": "view", "ts": 0.0}, 0)
        pop._long.masses["b"] = pop._short.masses["b"] = 2  # an int mass
    x = {"categories": ["a"], "event_type": "view", "ts": 1.0}
    learn_population.fast(fast, x, 0)
    learn_population.python(python, x, 0)
    assert same(population_inside(fast), population_inside(python))
    late = {**x, "ts": 1.0e6}  # 31 long half-lives after the reference: a rebase
    before = copy.deepcopy(population_inside(fast))
    with pytest.raises(TypeError):
        learn_population.fast(fast, late, 0)
    assert same(population_inside(fast), before)


@built
def test_learn_event_refused_by_the_c_code_changes_nothing():
    u = UserInterest()
    learn_event(u, {"categories": ["a"], "event_type": "view", "ts": 5.0})
    refused = [
        {"categories": ["a"], "event_type": "view", "ts": 6},  # an int time
        {"categories": ["a"], "event_type": "favourite", "ts": 6.0},  # a name the weights lack
        {"categories": ["a"], "event_type": "view", "ts": 6.0, "weight": "2"},
        {"categories": iter(["a"]), "event_type": "view", "ts": 6.0},
        {"categories": [1], "event_type": "view", "ts": 6.0},
        {"categories": [], "event_type": "view", "ts": 6.0},
        OrderedDict(categories=["a"], event_type="view", ts=6.0),
    ]
    for x in refused:
        before = copy.deepcopy(inside(u))
        with pytest.raises(TypeError):
            learn_event.fast(u, x)
        assert same(inside(u), before), x
    u._long["b"] = 2  # an int mass: refused before the short horizon changes
    before = copy.deepcopy(inside(u))
    with pytest.raises(TypeError):
        learn_event.fast(u, {"categories": ["a"], "event_type": "view", "ts": 6.0})
    assert same(inside(u), before)


@built
def test_inputs_the_c_code_does_not_take_get_the_python_definition():
    assert masses.top_k({"a": 2, "b": 1}, 1) == {"a": 2, OTHER: 0.0}  # ints stay ints
    assert type(masses.top_k({"a": 2, "b": 1}, 1)["a"]) is int
    moved_last = OrderedDict(a=0.5, b=0.5)
    moved_last.move_to_end("a")  # iterates b, a; the dict under it a, b: Python's order wins
    assert list(masses.top_k(moved_last, 2)) == list(masses.top_k.python(moved_last, 2))
    ranked = (c for c in ["c", "d"])  # any iterable: its names outlive the ranking
    got = masses.rank_smoothed({"a": 0.5}, 0.5, {"c": 0.6, "d": 0.4}, ranked, 2)
    assert same(
        got, masses.rank_smoothed.python({"a": 0.5}, 0.5, {"c": 0.6, "d": 0.4}, ["c", "d"], 2)
    )
    assert list(got) == ["a", "c", OTHER]
    fused = ({"a": 0.5}, 0.5, {"c": 0.6, "d": 0.4}, ["c", "d"], ("c", "d"), {"d": 1.0}, 0.5, 2)
    assert same(masses.fused_rank(*fused), masses.fused_rank.python(*fused))  # a tuple's "in"
    assert masses.entropy({1: 0.5, 2: 0.5}) == masses.entropy.python({1: 0.5, 2: 0.5})
    p = {"a": 0.5, "b": 0.25, "c": 0.25}
    assert masses.top_k(p, -1) == masses.top_k.python(p, -1) == {"a": 0.5, "b": 0.25, OTHER: 0.25}
    with pytest.raises(ZeroDivisionError):
        masses.top_smoothed({}, 0.0, 0.0, 3)
    with pytest.raises(TypeError):  # a wrong call is still refused, by the Python definition
        masses.top_k({"a": 1.0})
    with pytest.raises(KeyError):  # no _other: the Python definition's error
        masses.mean_surprise({"a": 1.0}, ["a"], 100.0)
    with pytest.raises(ZeroDivisionError):
        masses.mean_surprise({OTHER: 1.0}, [], 100.0)
    parts = ({"a": 1.0}, {"a": 1.0}, 0.5, 0.0, 0.0, 1.0, 1.0)
    for smoothing, prior in ((list(parts), p), (parts, OrderedDict(p)), ((parts[0],), p)):
        with pytest.raises(Exception) as refused:
            masses.snapshot_tops.fast(p, parts, smoothing, prior, ["a"], 2)
        assert refused.type is TypeError  # so the Python definition answers these
    # a horizon short of its seven parts: the Python definition's own error
    with pytest.raises(ValueError):
        masses.snapshot_tops(p, parts, (parts[0],), p, ["a"], 2)
    assert same(
        masses.snapshot_tops(p, parts, list(parts), p, ["a"], 2),
        masses.snapshot_tops.python(p, parts, parts, p, ["a"], 2),
    )


@built
def test_a_replay_gives_the_same_estimates_with_the_python_definitions(monkeypatch):
    """Users, priors and events as the worker sees them: every snapshot part is the same
    bit for bit with the C functions and with the Python definitions."""
    rng = random.Random(0)
    events = list(interleaved_events(0, 40, 60, seed=3))
    for e in events:  # multi-category events, extra weights: ties and evictions
        if rng.random() < 0.3:
            e["categories"] = rng.sample([f"cat-{i}" for i in range(40)], rng.randint(2, 4))
    prior = {f"cat-{i}": 1 / 40 for i in range(40)}
    ranked = sorted(prior)

    def run() -> list:
        users: dict[str, UserInterest] = {}
        out = []
        for e in events:
            u = users.setdefault(e["user_id"], UserInterest())
            after, moved = u.learn_and_predict(e)
            out.append(
                (
                    dict(after),
                    moved,
                    u.own_top(10),
                    u.top_horizons(10),
                    u.predict_top(prior, ranked, 10),
                    masses.entropy(u.own_top(10)),
                    u.snapshot_tops(10, prior, ranked),
                    u.snapshot_tops(10),
                )
            )
        return out

    fast = run()
    for name in ACCELERATED:
        python = getattr(masses, name).python
        monkeypatch.setattr(masses, name, python)
        if hasattr(user, name):
            monkeypatch.setattr(user, name, python)
    monkeypatch.setattr(user, "learn_event", learn_event.python)
    monkeypatch.setattr(user, "interest_tops", interest_tops.python)
    slow = run()
    assert len(fast) == len(slow) == len(events)
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert same(a, b), i
    assert any(len(s[0]) > 20 for s in fast)  # some users past max_categories: residuals


def restored_both(state: list, cfg: InterestConfig) -> tuple[UserInterest, UserInterest]:
    return tuple(
        fn(UserInterest, SurpriseDrift, state, cfg, cfg)
        for fn in (restore_interest.fast, restore_interest.python)
    )


@built
@settings(max_examples=200, deadline=None)
@given(event_steps, st.sampled_from(range(len(CONFIGS))))
def test_restore_interest(steps, config):
    """The C definition builds the estimator the Python one builds from a compact state,
    attribute for attribute, bit for bit; it learns on alike."""
    cfg = CONFIGS[config]
    u = UserInterest(cfg)
    for x, _ in events_of(steps, cfg):
        u.learn_one(x)
    fast, python = restored_both(u.compact_state(), cfg)
    assert same(attributes(fast), attributes(python))
    assert fast.config is python.config is cfg
    for i, (x, _) in enumerate(events_of(steps[:3], cfg)):
        assert same(learn_event(fast, x), learn_event(python, x)), i
        assert same(inside(fast), inside(python)), i


@built
def test_restore_interest_refuses_what_it_does_not_read():
    u = UserInterest()
    u.learn_one({"categories": ["a", "b"], "event_type": "cart", "ts": 5.0})
    state = u.compact_state()
    refused = [
        tuple(state),  # not a list
        state[:12],
        state[:4] + [state[4][:1]] + state[5:],  # fewer names than masses
        state[:10] + [tuple(state[10])] + state[11:],  # the drift state not a list
        state[:4] + [[1, "b"]] + state[5:],  # a name that is not a str
        state[:12] + [None],  # a flag neither bool nor number
    ]
    for bad in refused:
        with pytest.raises(TypeError):
            restore_interest.fast(UserInterest, SurpriseDrift, bad, None, u._cfg)
    assert same(UserInterest.from_compact_state(tuple(state)).state(), u.state())
    with pytest.raises(ValueError):  # zip(strict=True), from the Python definition
        UserInterest.from_compact_state(refused[2])
