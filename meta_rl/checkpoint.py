"""Checkpoints (training state) and exports (shareable weights), written atomically.

A checkpoint is a ``torch.save`` of plain data — tensors, numbers, strings, lists and
dicts — so it is read back with ``torch.load(..., weights_only=True)`` (no arbitrary
pickle code runs). Its ``format`` key identifies it; anything else is rejected with
a clear error. Contents: the policy description (:meth:`TutorPolicy.meta`), the
parameters (policy, Meta-SGD step sizes, value network), optimiser states, the
numpy RNG state, the iteration counter, env steps, best validation score and the
resolved config.

An export is the pickle-free format for sharing a trained tutor: a ``safetensors``
file of the tensors and a small JSON with the architecture, env id, env arguments,
observation transform and inner-update settings.

Every file is written to a temporary name in the same directory and renamed
(``os.replace`` is atomic on POSIX), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from meta_rl.policy import PolicySpec, init_params
from meta_rl.tutor import TutorPolicy

CHECKPOINT_FORMAT = "meta-tutor-checkpoint"
CHECKPOINT_VERSION = 1
EXPORT_WEIGHTS = "policy.safetensors"
EXPORT_META = "policy.json"


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Write a checkpoint dict (adds the format marker) atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    atomic_write(path, lambda p: torch.save(payload, p))


def load_checkpoint(path: str | os.PathLike[str], resume: bool = False) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check its whole structure.

    Anything that is not a complete meta-tutor checkpoint — an empty, truncated or foreign
    file, a pickle of arbitrary objects (refused without running anything), missing keys,
    ill-typed values, tensors whose shapes do not fit the stored architecture — is one
    ``ValueError`` naming the file and the first problem (:func:`check_checkpoint`).
    ``resume=True`` also requires the training state (optimisers, RNG, counters).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = _read(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a meta-tutor checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {state.get('version')!r}")
    problem = check_checkpoint(state, resume)
    if problem is not None:
        raise ValueError(f"{path} is not a valid meta-tutor checkpoint: {problem}")
    return state


def _read(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with our own one-line reasons for what it refuses.

    Torch's messages suggest re-running with ``weights_only=False``, which would execute
    whatever the file holds; they are never passed on.
    """
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is not a meta-tutor checkpoint: the file is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; its directory sits at the end, so a cut file fails here
        raise ValueError(
            f"{path} is not a meta-tutor checkpoint: not a torch archive ({size} bytes; "
            "truncated, or another kind of file)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on the pickle protocol of a foreign file
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported (global: GLOBAL [\w.]+|operand \d+)", str(e))
        detail = f" ({found.group(0).strip()})" if found else ""
        raise ValueError(
            f"{path} is not a meta-tutor checkpoint: it holds Python objects other than tensors and "
            f"plain data{detail}; refused without running them"
        ) from None
    except Exception as e:  # any failure to parse a foreign file is the same user error
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else ""
        reason = f"{type(e).__name__}: {first}" if first else type(e).__name__
        raise ValueError(f"{path} is not a meta-tutor checkpoint: cannot be read ({reason})") from None


#: keys of every checkpoint, with their types (``check_checkpoint``)
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "policy_meta": dict,
    "params": dict,
    "config": dict,
    "iteration": int,
    "env_steps": int,
}
#: keys a training run needs to continue (``load_checkpoint(resume=True)``)
RESUME_KEYS: dict[str, type | tuple[type, ...]] = {
    "optimizer": dict,
    "rng": dict,
    "best_val": (int, float),
    "wall_time": (int, float),
}
#: keys that may be ``None`` (absent when the run has no Meta-SGD step sizes / value network)
OPTIONAL_KEYS: dict[str, type | tuple[type, ...]] = {
    # Meta-SGD: one mapping of per-element rates; LSLR (MAML++): one mapping per inner step
    "inner_lrs": (dict, tuple, list),
    "value_params": dict,
    "value_optimizer": dict,
    "encoder": dict,  # student encoder of an encoder_ppo run (meta_rl.encoder)
}
POLICY_META_KEYS = ("format", "env", "policy", "inner", "advantage")


def check_checkpoint(state: Mapping[str, Any], resume: bool = False) -> str | None:
    """The first structural problem of a checkpoint dict, or ``None`` if it is sound.

    Checks: required keys and their types; every parameter group a mapping of names to
    finite floating-point tensors whose names and shapes are exactly those of the stored
    architecture (:meth:`TutorPolicy.from_meta`); the architecture's input and output
    sizes against the stored env (``obs_dim``, ``n_actions``); the config valid and for the
    same env as the policy; counters non-negative integers.
    """
    from meta_rl.config import make_config

    required = {**REQUIRED_KEYS, **(RESUME_KEYS if resume else {})}
    missing = [k for k in required if k not in state]
    if missing:
        return f"missing key(s) {missing}"
    for key, typ in {**required, **OPTIONAL_KEYS}.items():
        value = state.get(key)
        if value is None and key not in required:
            continue
        if isinstance(value, bool) or not isinstance(value, typ):
            return f"{key!r} must be of type {_type_name(typ)}, got {type(value).__name__}"
    for key in ("iteration", "env_steps"):
        if state[key] < 0:
            return f"{key!r} must be >= 0, got {state[key]}"
    meta = state["policy_meta"]
    absent = [k for k in POLICY_META_KEYS if k not in meta]
    if absent:
        return f"'policy_meta' lacks key(s) {absent}"
    per_step = isinstance(state.get("inner_lrs"), (tuple, list))
    groups = [(key, state.get(key)) for key in ("params", "value_params")]
    if per_step:
        groups += [(f"inner_lrs[{k}]", rates) for k, rates in enumerate(state["inner_lrs"])]
    else:
        groups.append(("inner_lrs", state.get("inner_lrs")))
    for key, group in groups:
        if group is None:
            continue
        if not isinstance(group, dict):
            return f"{key!r} must be of type mapping, got {type(group).__name__}"
        for name, value in group.items():
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                return f"{key}[{name!r}] must be a floating-point tensor, got {type(value).__name__}"
            if not bool(torch.isfinite(value).all()):
                return f"{key}[{name!r}] holds NaN or infinite values"
    try:
        spec = PolicySpec.from_dict(meta["policy"])
        for key, group in groups:
            if group is None:
                continue
            if key.startswith("inner_lrs["):  # LSLR: one scalar per parameter tensor
                problem = shape_problem(spec, group, scalar=True)
            else:
                problem = shape_problem(spec, group, 1 if key == "value_params" else None)
            if problem is not None:
                return f"{key} do not fit the stored architecture: {problem}"
        policy = policy_from_state(state)
        env = policy.env
        if (policy.spec.obs_dim, policy.spec.n_actions) != (env.obs_dim, env.n_actions):
            return (
                f"the policy takes {policy.spec.obs_dim} inputs and {policy.spec.n_actions} actions, but "
                f"{env.env_id} {dict(env.env_kwargs)} has {env.obs_dim} and {env.n_actions}"
            )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return f"'policy_meta' or the parameters do not describe a policy ({one_line_error(e)})"
    if bool(meta.get("meta_sgd")) != (state.get("inner_lrs") is not None and not per_step):
        return "'policy_meta' and 'inner_lrs' disagree on Meta-SGD step sizes"
    if bool(meta.get("per_step_lrs")) != per_step:
        return "'policy_meta' and 'inner_lrs' disagree on per-step (LSLR) step sizes"
    try:
        config = make_config(state["config"])
    except (ValueError, TypeError) as e:
        return f"its 'config' is not valid ({one_line_error(e)})"
    if (config.env, dict(config.env_kwargs)) != (env.env_id, dict(env.env_kwargs)):
        return (
            f"its config is for {config.env} {config.env_kwargs}, its policy for "
            f"{env.env_id} {dict(env.env_kwargs)}"
        )
    if resume:
        rng = state["rng"]
        if not isinstance(rng.get("bit_generator"), str) or not isinstance(rng.get("state"), dict):
            return "'rng' is not a numpy generator state"
        if (state.get("value_optimizer") is None) != (state.get("value_params") is None):
            return "'value_params' and 'value_optimizer' must both be present or both absent"
    return None


def shape_problem(
    spec: PolicySpec, tensors: Mapping[str, Any], out_dim: int | None = None, scalar: bool = False
) -> str | None:
    """Missing, unexpected and wrongly shaped tensors of a parameter group, or ``None``.

    The expected shapes come from :func:`~meta_rl.policy.init_params` on torch's ``meta``
    device (shapes only, nothing allocated: a corrupt architecture cannot exhaust memory);
    ``scalar`` expects one scalar per parameter tensor (LSLR step sizes).
    """
    with torch.device("meta"):
        expected = {
            k: () if scalar else tuple(v.shape) for k, v in init_params(spec, out_dim=out_dim).items()
        }
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    parts = []
    missing = [k for k in expected if k not in got]
    if missing:
        parts.append(f"missing {missing}")
    unexpected = [k for k in got if k not in expected]
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    parts += [
        f"{k} has shape {list(got[k])}, expected {list(expected[k])}"
        for k in expected
        if k in got and got[k] != expected[k]
    ]
    return "; ".join(parts) or None


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {dict: "mapping", int: "integer", float: "number"}
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join(names.get(t, t.__name__) for t in types)


def one_line_error(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if isinstance(e, KeyError) else text


def policy_from_state(state: Mapping[str, Any]) -> TutorPolicy:
    """The :class:`TutorPolicy` stored in a checkpoint dict (an
    :class:`~meta_rl.encoder_tutor.EncoderTutor` when it has a student encoder)."""
    if state["policy_meta"].get("encoder") is not None:
        from meta_rl.encoder_tutor import EncoderTutor

        return EncoderTutor.from_parts(
            state["policy_meta"],
            state["params"],
            state.get("encoder"),
            state.get("value_params"),
            state.get("inner_lrs"),
        )
    return TutorPolicy.from_meta(
        state["policy_meta"], state["params"], state.get("inner_lrs"), state.get("value_params")
    )


def export_policy(policy: TutorPolicy, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``policy.safetensors`` and ``policy.json`` into ``out_dir``; returns the dir."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    tensors = {f"policy.{k}": v for k, v in policy.params.items()}
    lrs = policy.inner_lrs
    if isinstance(lrs, dict):
        tensors.update({f"inner_lr.{k}": v for k, v in lrs.items()})
    elif lrs is not None:  # per-step rates (LSLR): one group per inner step
        for step, rates in enumerate(lrs):
            tensors.update({f"inner_lr_step{step}.{k}": v for k, v in rates.items()})
    if policy.value_params is not None:
        tensors.update({f"value.{k}": v for k, v in policy.value_params.items()})
    tensors.update({f"encoder.{k}": v for k, v in getattr(policy, "encoder", {}).items()})
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    atomic_write(out / EXPORT_WEIGHTS, lambda p: save_file(tensors, str(p)))
    meta = json.dumps(policy.meta(), indent=1)
    atomic_write(out / EXPORT_META, lambda p: p.write_text(meta))
    return out


def _load_export(directory: Path) -> TutorPolicy:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((directory / EXPORT_META).read_text())
        tensors = load_file(str(directory / EXPORT_WEIGHTS))
    except (json.JSONDecodeError, SafetensorError, OSError) as e:
        raise ValueError(f"{directory} is not a meta-tutor export: {e}") from e
    groups: dict[str, dict[str, torch.Tensor]] = {"policy": {}, "inner_lr": {}, "value": {}, "encoder": {}}
    steps: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        group, _, name = k.partition(".")
        if group.startswith("inner_lr_step") and group[len("inner_lr_step") :].isdigit():
            steps.setdefault(int(group[len("inner_lr_step") :]), {})[name] = v
            continue
        if group not in groups:
            raise ValueError(f"{directory}: unexpected tensor {k!r} in {EXPORT_WEIGHTS}")
        groups[group][name] = v
    if not isinstance(meta, dict):
        raise ValueError(f"{directory}/{EXPORT_META} is not a meta-tutor policy description")
    if steps and sorted(steps) != list(range(len(steps))):
        raise ValueError(f"{directory}: per-step step sizes of steps {sorted(steps)} are not 0..K-1")
    lrs = tuple(steps[k] for k in range(len(steps))) if steps else groups["inner_lr"] or None
    if meta.get("encoder") is not None or groups["encoder"]:
        from meta_rl.encoder_tutor import EncoderTutor

        if meta.get("encoder") is None:
            raise ValueError(f"{directory}: encoder tensors but no encoder in {EXPORT_META}")
        return EncoderTutor.from_parts(
            meta, groups["policy"], groups["encoder"], groups["value"] or None, lrs
        )
    return TutorPolicy.from_meta(meta, groups["policy"], lrs, groups["value"] or None)


def load_policy(path: str | os.PathLike[str]) -> TutorPolicy:
    """Load a tutor from a checkpoint file, a run directory (best checkpoint, else the
    latest) or an export directory / its ``policy.json`` / ``policy.safetensors``."""
    p = Path(path)
    if p.is_file() and p.name in (EXPORT_META, EXPORT_WEIGHTS):
        return _load_export(p.parent)
    if p.is_dir():
        if (p / EXPORT_META).is_file():
            return _load_export(p)
        for name in ("best.pt", "checkpoint.pt"):
            if (p / name).is_file():
                return policy_from_state(load_checkpoint(p / name))
        raise FileNotFoundError(
            f"{p} holds no checkpoint (best.pt, checkpoint.pt) nor export ({EXPORT_META})"
        )
    return policy_from_state(load_checkpoint(p))
