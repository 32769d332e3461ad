"""Calibrating student populations from real response logs.

``calibrate(env_id, log, out)`` reads a knowledge-tracing log (SkillGraph-v0: BKT by
EM with per-student shrinkage) or a review log (SpacedRepetition-v0: memory model by
maximum likelihood), writes the fitted profiles of the training and held-out students,
and scores held-out prediction against the default population.
``population_distribution(path, env_id, env_kwargs)`` turns the written file into a
``ProfileDistribution`` a trainer can sample tasks from. ``simulate_log`` writes logs
from our own simulators (parameter recovery, sample files). See ``docs/calibration.md``.
"""

from envs.calibration.calibrate import calibrate
from envs.calibration.logs import read_kt_log, read_review_log
from envs.calibration.population import PopulationDistribution, population_distribution
from envs.calibration.simulate import simulate_log

__all__ = [
    "PopulationDistribution",
    "calibrate",
    "population_distribution",
    "read_kt_log",
    "read_review_log",
    "simulate_log",
]
