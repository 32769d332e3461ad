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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

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


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); a foreign file is a ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as e:
        raise ValueError(f"{path} is not a meta-tutor checkpoint (cannot be read safely: {e})") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a meta-tutor checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {state.get('version')!r}")
    return state


def policy_from_state(state: Mapping[str, Any]) -> TutorPolicy:
    """The :class:`TutorPolicy` stored in a checkpoint dict."""
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
    groups: dict[str, dict[str, torch.Tensor]] = {"policy": {}, "inner_lr": {}, "value": {}}
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
