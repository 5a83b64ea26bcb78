"""Online interest estimators with River's API: a user's distribution, the population's, and
interest drift. Event time drives decay; every estimator's state is plain data."""

from models.online.config import InterestConfig
from models.online.drift import SurpriseDrift
from models.online.population import PopulationInterest
from models.online.user import UserInterest

__all__ = [
    "InterestConfig",
    "PopulationInterest",
    "SurpriseDrift",
    "UserInterest",
]
