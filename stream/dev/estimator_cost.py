"""What one event costs the worker's estimator in-process, with the C of ``models`` and without.

No broker: users with long histories from the bench's generator, a population prior, then
more events, each applied to its user's record, built into a snapshot and packed, timed per
event; and the parts of a snapshot one at a time, a sequence estimate's fusion among them.
Each variant runs in a process of its own (``python`` blocks ``models._masses`` and
``models._history`` before anything imports them), alternating.

    python -m stream.dev.estimator_cost            # both variants, 3 rounds
    python -m stream.dev.estimator_cost --rounds 1 --users 500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence

VARIANTS = ("c", "python")


def measure(users: int, history: int, events: int) -> dict[str, float]:
    """µs per event (apply; apply + build; apply + build + pack; the history's append alone;
    the population's learning alone), per record written and read (``encode_record``,
    ``decode_record``) and per snapshot part."""
    from models import history as user_history
    from models.fused_snapshot import fused_snapshot_of, fused_top
    from models.fusion import FusionParams
    from models.online import masses
    from models.online.population import PopulationInterest
    from models.priors.population import PopulationPrior
    from models.tracker import TrackerConfig, UserRecord, build_snapshot, prior_depth, snapshot_of
    from stream.codec import decode_record, encode_record, encode_snapshot
    from stream.dev.events import interleaved_events

    cfg = TrackerConfig()
    generated = list(interleaved_events(0, users, history + events // users + 1, seed=0))
    warm, rest = generated[: users * history], generated[users * history :][:events]
    records: dict[str, UserRecord] = {}
    pop = PopulationInterest(cfg.interest)
    for e in warm:
        r = records.setdefault(e["user_id"], UserRecord(cfg))
        r.apply(e)
        pop.learn_one(e, user_events=r.n_events - 1)
    prior = PopulationPrior.from_population(pop, prior_depth(cfg))

    def per_event(build: bool, pack: bool) -> float:
        start = time.perf_counter()
        for e in rest:
            r = records[e["user_id"]]
            r.apply(dict(e))
            if build:
                s = build_snapshot(e["user_id"], r, cfg, prior=prior)
                if pack:
                    encode_snapshot(s)
        return (time.perf_counter() - start) / len(rest) * 1e6

    out = {
        "c": masses._masses is not None,
        "history_c": user_history._history is not None,
        "apply_us": per_event(False, False),
        "apply_build_us": per_event(True, False),
        "apply_build_pack_us": per_event(True, True),
    }
    start = time.perf_counter()
    for e in rest:  # the history's part of apply alone (the same events again)
        records[e["user_id"]]._append(e["item_id"], e["categories"], e["event_type"], e["ts"], 0.1)
    out["history_append_us"] = (time.perf_counter() - start) / len(rest) * 1e6
    start = time.perf_counter()
    for i, e in enumerate(rest):  # the population's learning alone, cold and warm users mixed
        pop.learn_one(e, user_events=i % 8)
    out["population_learn_us"] = (time.perf_counter() - start) / len(rest) * 1e6
    start = time.perf_counter()
    blobs = [encode_record(r) for r in records.values()]
    out["record_encode_us"] = (time.perf_counter() - start) / len(blobs) * 1e6
    start = time.perf_counter()
    for blob in blobs:
        decode_record(blob, cfg)
    out["record_decode_us"] = (time.perf_counter() - start) / len(blobs) * 1e6
    estimators = [r.interest for r in records.values()]
    k = cfg.top_k
    # A sequence estimate per user, as the scorer leaves one (2k categories and _other),
    # fused at the weight of an unfitted checkpoint.
    sequences = {id(u): sequence_estimate(prior.ranked, i, 2 * k) for i, u in enumerate(estimators)}
    fusion = {"online": FusionParams(), "collaborative": FusionParams()}
    w = fusion["online"].sequence_weight(3)
    parts = {
        "own_distribution_us": lambda u: u.own_distribution(),
        "own_top_us": lambda u: u.own_top(k),
        "top_horizons_us": lambda u: u.top_horizons(k),
        "predict_top_us": lambda u: u.predict_top(prior.probs, prior.ranked, k),
        "snapshot_of_us": lambda u: snapshot_of("u", u, None, [], cfg, prior=prior),
        "fused_top_us": lambda u: fused_top(u, prior, sequences[id(u)], w, k),
        "fused_snapshot_of_us": lambda u: fused_snapshot_of(
            "u", u, None, [], cfg, (sequences[id(u)], time.time(), "v", []), fusion, prior
        ),
    }
    for name, part in parts.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for u in estimators:
                u._own = u._own_top = u._scales = None  # the caches an event clears
                part(u)
            best = min(best, (time.perf_counter() - start) / len(estimators) * 1e6)
        out[name] = best
    return out


def sequence_estimate(ranked: Sequence[str], i: int, n: int) -> dict[str, float]:
    """A sequence model's category distribution for user ``i``: ``n`` of the prior's ranked
    categories from the ``i``-th on, falling weights, a fifth of the mass as ``_other``.

    >>> sequence_estimate(["a", "b", "c"], 1, 2)
    {'b': 0.5333333333333333, 'c': 0.26666666666666666, '_other': 0.2}
    """
    names = [ranked[(i + j) % len(ranked)] for j in range(n)]
    weights = [1.0 / (j + 1) for j in range(len(names))]
    total = sum(weights)
    out = {c: 0.8 * wt / total for c, wt in zip(names, weights, strict=True)}
    out["_other"] = 0.2
    return out


def run_variant(variant: str, users: int, history: int, events: int) -> dict[str, float]:
    """``measure`` in a fresh process, with the C extensions of ``models`` or with them
    blocked."""
    block = (
        'import sys; sys.modules["models._masses"] = sys.modules["models._history"] = None; '
        if variant != "c"
        else ""
    )
    code = (
        f"{block}import json; from stream.dev.estimator_cost import measure; "
        f"print(json.dumps(measure({users}, {history}, {events})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="estimator_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--history", type=int, default=50, help="events per user before timing")
    ap.add_argument("--events", type=int, default=60_000, help="events timed per pass")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    rows: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            rows[variant].append(run_variant(variant, args.users, args.history, args.events))
    keys = [k for k in rows["c"][0] if k.endswith("_us")]
    print(f"{args.users:,} users, {args.history} events each, then {args.events:,} timed")
    print("| µs | " + " | ".join(f"{v} (min of {args.rounds})" for v in VARIANTS) + " |")
    print("|---|" + "---:|" * len(VARIANTS))
    for key in keys:
        cells = [f"{min(r[key] for r in rows[v]):.1f}" for v in VARIANTS]
        print(f"| {key[:-3]} | " + " | ".join(cells) + " |")
    if not rows["c"][0]["c"]:
        print("(models._masses is not built here: both columns ran the Python definitions)")


if __name__ == "__main__":
    main()
