"""The online estimators' parameters: one frozen object, shared by all users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from models.schema import DEFAULT_EVENT_WEIGHTS, canonical_event_type


@dataclass(frozen=True)
class InterestConfig:
    """Parameters of the online estimators (one frozen object, shared by all users).

    Half-lives are in seconds of event time: event time drives decay. Each horizon may also
    decay per event of the user (``*_event_half_life``, in the user's events; 0 turns it
    off), so a burst of events (a session, a day of ratings after a year away) does not
    outweigh all that came before, however little event time it spans. That count is the
    order in which events arrive: a late event is decayed by its own time, but counted as
    the user's latest. ``prior_strength`` is the Dirichlet pseudo-count of the population
    prior (in events, as the user's masses are) when a prior is given: the next-event
    prediction. Without one (the user's own distribution, the published snapshot) the
    pseudo-count is ``other_strength``, held as ``_other``, so that a user with a handful of
    events is shown their categories rather than mostly ``_other``. ``max_categories`` bounds
    each horizon's sparse state. ``population_smoothing`` is the pseudo-count every category
    of a known vocabulary gets in the dense prior (``PopulationInterest.predict_dense``).
    The population is tracked at ``population_half_life`` and ``population_short_half_life``
    (off when 0 or not shorter), mixed with a weight learned online from each horizon's
    log-loss on users' first ``population_cold_events`` events (memory
    ``population_mix_memory`` events; see ``models.online.population``).

    The defaults were chosen on the first 60% of the taobao-head and ml-latest-small event
    streams (the evaluation protocol run on that slice); see the README's configuration.

    Examples
    --------
    >>> cfg = InterestConfig(event_weights={"view": 1.0, "fav": 3.0})
    >>> cfg.weight({"event_type": "favourite"}), cfg.weight({"event_type": "unknown"})
    (3.0, 1.0)
    >>> cfg.weight({"event_type": "view", "weight": 0.5})  # an event's own weight wins
    0.5
    """

    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    short_half_life: float = 3600.0
    long_half_life: float = 90 * 86400.0
    short_event_half_life: float = 5.0
    long_event_half_life: float = 20.0
    short_weight: float = 0.5
    drift_short_weight: float = 0.8
    drift_settle_events: int = 10
    prior_strength: float = 5.0
    other_strength: float = 1.0
    max_categories: int = 24
    population_half_life: float = 30 * 86400.0
    population_short_half_life: float = 86400.0
    population_cold_events: int = 5
    population_mix_memory: float = 1000.0
    population_max_categories: int = 100_000
    population_smoothing: float = 1.0
    other_spread: float = 100.0
    drift_threshold: float = 8.0
    drift_delta: float = 0.5
    drift_min_instances: int = 8

    def weight(self, event: Mapping) -> float:
        """The event's weight: its explicit ``weight`` or its type's default."""
        w = event.get("weight")
        if w is not None:
            return float(w)
        et = event.get("event_type", "view")
        w = self.event_weights.get(et)  # validated events carry the canonical name already
        if w is None:
            w = self.event_weights.get(canonical_event_type(et), 1.0)
        return float(w)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["event_weights"] = dict(self.event_weights)
        return d
