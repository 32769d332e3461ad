"""Logs in, fitted population out: the pipeline behind ``meta-tutor calibrate``.

1. Read and validate the log (``envs.calibration.logs``, any of its formats); keep the
   chosen skills/items (``skills`` by name or the ``top_skills`` most answered); for a
   review log, optionally cut every learner's items into decks of ``deck_size`` items,
   each deck one student. The log defines the env's structure: ``n_skills`` /
   ``n_items`` is the number of skills/items left (a different value in ``env_kwargs`` is
   an error naming both). Students with fewer than ``min_responses`` responses are
   dropped (counted in the report, never named).
2. Split the students at random (``seed``) into training and held-out students
   (``test_fraction``).
3. Fit the population on the training students only (pooled BKT per skill /
   pooled memory model), then every student individually with shrinkage to it.
4. Map the fits to env profiles, validate them against the env, and write
   ``population.json`` / ``population.test.json`` / ``population.meta.json``
   (``envs.calibration.population``).
5. Score held-out prediction (``envs.calibration.predict``): the calibrated population
   (a mixture of the training students' profiles) against the env's default population
   (``n_reference`` profiles of its ``train`` split) on the held-out students' responses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.calibration import bkt, memory, predict
from envs.calibration import skill_graph as sg
from envs.calibration.logs import ResponseLog, group_decks, read_log, select_units
from envs.calibration.population import write_population
from envs.profiles import stack_profiles

SUPPORTED = ("MetaTutor/SkillGraph-v0", "MetaTutor/SpacedRepetition-v0", "MetaTutor/ZPD-v0")
#: the env keyword a log determines, and what its units are called
STRUCTURE = {
    "MetaTutor/SkillGraph-v0": ("n_skills", "skill"),
    "MetaTutor/SpacedRepetition-v0": ("n_items", "item"),
    "MetaTutor/ZPD-v0": ("n_skills", "skill"),
}
#: at most this many profiles form a mixture when scoring (a random subset beyond)
MAX_MIXTURE = 300


def _split(log: ResponseLog, min_responses: int, test_fraction: float, seed: int):
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    keep = np.flatnonzero(log.counts() >= min_responses)
    if len(keep) == 0:
        raise ValueError(f"{log.source}: no student has at least {min_responses} responses")
    rng = np.random.default_rng([seed, 7])
    keep = rng.permutation(keep)
    n_test = round(test_fraction * len(keep))
    if test_fraction > 0 and len(keep) >= 2:
        n_test = min(max(n_test, 1), len(keep) - 1)
    return np.sort(keep[n_test:]), np.sort(keep[:n_test]), log.n_students - len(keep)


def _rows(arrays: Mapping[str, np.ndarray], n: int) -> list[dict[str, Any]]:
    return [{k: (v[i].tolist() if v.ndim == 2 else float(v[i])) for k, v in arrays.items()} for i in range(n)]


def _subsample(arrays: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    n = len(next(iter(arrays.values())))
    if n <= MAX_MIXTURE:
        return arrays
    pick = np.random.default_rng([seed, 11]).choice(n, MAX_MIXTURE, replace=False)
    return {k: v[pick] for k, v in arrays.items()}


def infer_structure(
    log: ResponseLog, env_id: str, env_kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, int]]:
    """``env_kwargs`` completed with the dimension the log defines, and what was inferred.

    A value given in ``env_kwargs`` that differs from the log's is an error naming both.
    """
    dim, what = STRUCTURE[env_id]
    n = len(log.names)
    kwargs = dict(env_kwargs)
    if dim in kwargs and kwargs[dim] != n:
        shown = list(log.names[:10]) + (["…"] if n > 10 else [])
        raise ValueError(
            f"{log.source}: the log has {n} {what}s {shown} but --env-kwargs sets {dim}={kwargs[dim]}; "
            f"drop {dim} from --env-kwargs (the log defines it) or choose {what}s with --skills/--top-skills"
        )
    inferred = {} if dim in kwargs else {dim: n}
    kwargs[dim] = n
    return kwargs, inferred


def _dynamics(env_id: str, env_kwargs: Mapping[str, Any], log: ResponseLog):
    import envs

    try:
        return envs.family(env_id).load("dynamics")(1, **env_kwargs)
    except (ValueError, TypeError) as e:
        dim, what = STRUCTURE[env_id]
        hint = ""
        if dim in str(e):
            hint = f"; the log has {len(log.names)} {what}s: keep fewer with --top-skills K or --skills A,B"
            hint += " or cut them into decks with --deck-size N" if what == "item" else ""
        raise ValueError(
            f"{log.source}: env kwargs {dict(env_kwargs)} rejected by {env_id}: {e}{hint}"
        ) from None


def load_log(
    env_id: str,
    log_path: str | os.PathLike[str],
    log_format: str = "auto",
    time_unit: str = "s",
    skills: Sequence[str] | None = None,
    top_skills: int | None = None,
    deck_size: int | None = None,
) -> ResponseLog:
    """Read the log of ``env_id``'s kind and keep the chosen skills/items (or decks)."""
    kind = "review" if env_id == "MetaTutor/SpacedRepetition-v0" else "kt"
    if deck_size is not None and kind != "review":
        raise ValueError("--deck-size applies to review logs (SpacedRepetition-v0) only")
    log = select_units(read_log(log_path, kind, log_format, time_unit), skills, top_skills)
    return group_decks(log, deck_size) if deck_size is not None else log


def calibrate(
    env_id: str,
    log_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    log_format: str = "auto",
    skills: Sequence[str] | None = None,
    top_skills: int | None = None,
    deck_size: int | None = None,
    test_fraction: float = 0.2,
    min_responses: int = 10,
    seed: int = 0,
    shrinkage: Mapping[str, float] | None = None,
    content_affinity: str = "neutral",
    steps_per_response: float = 2.0,
    time_unit: str = "s",
    fit_items: bool = True,
    prior_sd: float = 1.0,
    n_reference: int = 200,
    progress: bool = False,
    min_gap_days: float = 0.0,
) -> dict[str, Any]:
    """Fit a population of ``env_id`` students to the log at ``log_path``; write it to ``out``.

    Returns the content of ``population.meta.json`` plus the written ``paths``. Nothing
    is written unless the whole fit succeeds. ``progress`` shows progress bars (stderr).
    """
    if env_id not in SUPPORTED:
        raise ValueError(f"calibration supports {list(SUPPORTED)}, not {env_id!r}")
    if Path(out).resolve() == Path(log_path).resolve():
        raise ValueError("--out must not overwrite the log")
    log = load_log(env_id, log_path, log_format, time_unit, skills, top_skills, deck_size)
    env_kwargs, inferred = infer_structure(log, env_id, dict(env_kwargs or {}))
    dyn = _dynamics(env_id, env_kwargs, log)
    if env_id == "MetaTutor/SkillGraph-v0":
        fitted = _fit_skill_graph(
            dyn,
            log,
            env_kwargs,
            test_fraction,
            min_responses,
            seed,
            shrinkage,
            content_affinity,
            steps_per_response,
            n_reference,
            progress,
        )
    elif env_id == "MetaTutor/ZPD-v0":
        fitted = _fit_zpd(log, env_kwargs, inferred, test_fraction, min_responses, seed, n_reference)
        dyn = _dynamics(env_id, env_kwargs, log)  # with the fitted level difficulties
    else:
        fitted = _fit_spaced_repetition(
            dyn,
            log,
            env_kwargs,
            test_fraction,
            min_responses,
            seed,
            time_unit,
            fit_items,
            prior_sd,
            n_reference,
            progress,
            min_gap_days,
        )
    train, test, meta = fitted
    # every profile goes through the env's own validation before it is written
    train = [dyn.coerce_profile(p) for p in train]
    test = [dyn.coerce_profile(p) for p in test]
    meta = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "inferred_from_log": inferred,
        "log_format": log_format,
        "selection": {"skills": list(skills) if skills else None, "top_skills": top_skills},
        "deck_size": deck_size,
        "seed": seed,
        "test_fraction": test_fraction,
        "min_responses": min_responses,
        **meta,
    }
    paths = write_population(out, env_id, train, test, meta)
    return {**meta, "paths": {k: str(v) for k, v in paths.items()}}


def _fit_skill_graph(
    dyn,
    log,
    env_kwargs,
    test_fraction,
    min_responses,
    seed,
    shrinkage,
    affinity_mode,
    steps_per_response,
    n_reference,
    progress=False,
):
    import envs

    train_ids, test_ids, dropped = _split(log, min_responses, test_fraction, seed)
    parts = {"train": log.subset(train_ids), "test": log.subset(test_ids)}
    seqs = {k: bkt.sequences(v) for k, v in parts.items() if v.n_students}
    pooled = bkt.fit_pooled(seqs["train"], progress=progress)
    profiles, sched = {}, {}
    for part, s in seqs.items():
        fit = bkt.fit_students(s, pooled, shrinkage, progress=progress)
        sched[part] = sg.schedule(parts[part], s, steps_per_response)
        aff = sg.affinities(affinity_mode, s.n_students, dyn.n_skills, dyn.n_content, seed + (part == "test"))
        profiles[part] = sg.profiles_from_fit(fit, *sched[part], aff)
    meta: dict[str, Any] = {
        "skills": list(log.names),
        "content_affinity": affinity_mode,
        "steps_per_response": steps_per_response,
        "shrinkage": {**bkt.DEFAULT_KAPPA, **dict(shrinkage or {})},
        "n_students": {"train": len(train_ids), "test": len(test_ids), "dropped": int(dropped)},
        "n_responses": {k: v.n_rows for k, v in parts.items()},
        "pooled_bkt": pooled.to_dict(log.names),
    }
    if "test" in seqs:
        s, held = seqs["test"], parts["test"]
        y = held.correct
        reference = stack_profiles(
            envs.distribution("MetaTutor/SkillGraph-v0", **env_kwargs).sample(n_reference, "train", seed=seed)
        )
        _, pooled_pred, _ = bkt.forward(s, pooled.per_sequence(s))
        p_pooled = np.zeros(held.n_rows)
        p_pooled[s.row] = pooled_pred
        counted = np.ones(held.n_rows, dtype=bool)
        preds = {
            "calibrated_population": predict.mixture(
                predict.kt_component_predictions(
                    _subsample(profiles["train"], seed), s, *sched["test"], held.n_rows
                ),
                y,
                held.student,
                counted,
            ),
            "default_population": predict.mixture(
                predict.kt_component_predictions(reference, s, *sched["test"], held.n_rows),
                y,
                held.student,
                counted,
            ),
            "pooled_bkt": p_pooled,
        }
        meta["held_out"] = {name: predict.scores(y, p) for name, p in preds.items()}
    n_train = len(train_ids)
    return _rows(profiles["train"], n_train), _rows(profiles.get("test", {}), len(test_ids)), meta


def _fit_spaced_repetition(
    dyn,
    log,
    env_kwargs,
    test_fraction,
    min_responses,
    seed,
    time_unit,
    fit_items,
    prior_sd,
    n_reference,
    progress=False,
    min_gap_days=0.0,
):
    import envs

    if not min_gap_days >= 0:
        raise ValueError(f"--min-gap-days must be >= 0, got {min_gap_days!r}")
    train_ids, test_ids, dropped = _split(log, min_responses, test_fraction, seed)
    parts = {"train": log.subset(train_ids), "test": log.subset(test_ids)}
    data = {k: memory.reviews(v, dyn.n_items, min_gap_days) for k, v in parts.items() if v.n_students}
    model = dyn.memory_model
    pooled = memory.fit_pooled(data["train"], model, progress=progress)
    profiles = {
        part: memory.fit_students(
            d, pooled, model, fit_items=fit_items, prior_sd=prior_sd, progress=progress
        ).arrays()
        for part, d in data.items()
    }
    meta: dict[str, Any] = {
        "items": list(log.names),
        "memory_model": model,
        "fit_items": fit_items,
        "prior_sd": prior_sd,
        "time_unit": time_unit,
        "min_gap_days": min_gap_days,
        "n_students": {"train": len(train_ids), "test": len(test_ids), "dropped": int(dropped)},
        "n_responses": {k: v.n_rows for k, v in parts.items()},
        "pooled_memory": {
            "decay": float(pooled.decay[0]),
            "gain": float(pooled.gain[0]),
            "fail_effect": float(pooled.fail_effect[0]),
        },
    }
    if "test" in data:
        d = data["test"]
        reference = stack_profiles(
            envs.distribution("MetaTutor/SpacedRepetition-v0", **env_kwargs).sample(
                n_reference, "train", seed=seed
            )
        )
        student = np.repeat(np.arange(d.n_students), d.item.shape[1])
        y = d.correct.reshape(-1)
        preds = {}
        for name, arrays in (
            ("calibrated_population", _subsample(profiles["train"], seed)),
            ("default_population", reference),
        ):
            p, counted = predict.review_component_predictions(arrays, d, model)
            c = counted.reshape(-1)
            preds[name] = (predict.mixture(p.reshape(len(p), -1), y, student, c), c)
        pooled_arrays = {k: v[:1] for k, v in pooled.arrays().items()}
        p, counted = predict.review_component_predictions(pooled_arrays, d, model)
        preds["pooled_memory"] = (p.reshape(-1), counted.reshape(-1))
        meta["held_out"] = {name: predict.scores(y[c], p[c]) for name, (p, c) in preds.items()}
    return _rows(profiles["train"], len(train_ids)), _rows(profiles.get("test", {}), len(test_ids)), meta


def _fit_zpd(log, env_kwargs, inferred, test_fraction, min_responses, seed, n_reference):
    """Rasch fit (``envs.calibration.zpd``); sets the env's level ``difficulties`` unless given."""
    import envs
    from envs.calibration import zpd

    train_ids, test_ids, dropped = _split(log, min_responses, test_fraction, seed)
    parts = {"train": log.subset(train_ids), "test": log.subset(test_ids)}
    fits = {k: zpd.fit_rasch(v) for k, v in parts.items() if v.n_students}
    train_fit = fits["train"]
    if "difficulties" not in env_kwargs:
        levels = zpd.level_difficulties(train_fit, parts["train"], int(env_kwargs.get("n_levels", 5)))
        env_kwargs["difficulties"] = inferred["difficulties"] = levels
    n_skills = len(log.names)
    profiles = {
        part: zpd.profiles(fit, n_skills, np.arange(parts[part].n_students), seed + (part == "test"))
        for part, fit in fits.items()
    }
    meta: dict[str, Any] = {
        "skills": list(log.names),
        "items": list(log.item_names),
        "item_difficulty": dict(zip(log.item_names, np.round(train_fit.b, 4).tolist())),
        "skill_mean_ability": dict(zip(log.names, np.round(train_fit.skill_mean, 4).tolist())),
        "ability_sd": train_fit.ability_sd,
        "population_fields": list(zpd.POPULATION_FIELDS),
        "n_students": {"train": len(train_ids), "test": len(test_ids), "dropped": int(dropped)},
        "n_responses": {k: v.n_rows for k, v in parts.items()},
    }
    if "test" in fits:
        held = parts["test"]
        y = held.correct
        counted = np.ones(held.n_rows, dtype=bool)
        reference = stack_profiles(
            envs.distribution("MetaTutor/ZPD-v0", **env_kwargs).sample(n_reference, "train", seed=seed)
        )
        train_ability = _subsample({"a": profiles["train"]["ability0"]}, seed)["a"]
        preds = {
            name: predict.mixture(zpd.predictions(a, train_fit.b, held), y, held.student, counted)
            for name, a in (
                ("calibrated_population", train_ability),
                ("default_population", reference["ability0"]),
            )
        }
        preds["rasch_skill_means"] = zpd.predictions(train_fit.skill_mean[None, :], train_fit.b, held)[0]
        meta["held_out"] = {name: predict.scores(y, p) for name, p in preds.items()}
    return _rows(profiles["train"], len(train_ids)), _rows(profiles.get("test", {}), len(test_ids)), meta
