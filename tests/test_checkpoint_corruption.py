"""Every kind of broken checkpoint is one clear error (Python: ValueError; CLI: exit 2, one
line, no traceback) naming the file, and a code-executing pickle never runs."""

from __future__ import annotations

import io
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import TINY_TRAIN

from meta_rl.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, load_policy, save_checkpoint
from meta_rl.cli import main
from meta_rl.config import load_config
from meta_rl.trainer import Trainer

MARKER = Path("/tmp/meta_tutor_i19_pwned")


class _Evil:
    """Unpickling this creates MARKER: proof that the pickle's code ran."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "run"
    cfg = load_config(None, [*TINY_TRAIN, "n_iterations=2", "meta_sgd=true"])
    trainer = Trainer(cfg, out, progress=False)
    trainer.train()
    trainer.close()
    return out


def _bytes(write: Callable[[io.BytesIO], None]) -> bytes:
    buf = io.BytesIO()
    write(buf)
    return buf.getvalue()


def _edited(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], bytes]:
    def make(good: Path) -> bytes:
        state = load_checkpoint(good)
        edit(state)
        tmp = good.with_name("edited.pt")
        save_checkpoint(tmp, {k: v for k, v in state.items() if k not in ("format", "version")})
        data = tmp.read_bytes()
        tmp.unlink()
        return data

    return make


def _shrink_first_layer(s: dict[str, Any]) -> None:
    s["params"]["l0.weight"] = s["params"]["l0.weight"][:, :-1].clone()


def _wrong_but_consistent_arch(s: dict[str, Any]) -> None:
    # meta, params and step sizes agree with each other, but the policy takes one input too many
    s["policy_meta"]["policy"]["obs_dim"] += 1
    for group in ("params", "inner_lrs"):
        w = s[group]["l0.weight"]
        s[group]["l0.weight"] = torch.cat([w, w[:, :1]], dim=1)


#: name -> (make the bytes from a good checkpoint, a phrase the one-line error must hold)
CASES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "zero bytes": (lambda good: b"", "the file is empty (0 bytes)"),
    "truncated": (lambda good: good.read_bytes()[: good.stat().st_size // 2], "truncated"),
    "random bytes": (lambda good: os.urandom(4096), "not a torch archive"),
    "text": (lambda good: b"hello\n", "not a torch archive"),
    "foreign pickle": (
        lambda good: pickle.dumps({"format": CHECKPOINT_FORMAT, "x": _Evil()}, protocol=2),
        "not a torch archive",
    ),
    "foreign pickle in a torch archive": (
        lambda good: _bytes(lambda b: torch.save({"format": CHECKPOINT_FORMAT, "x": _Evil()}, b)),
        "refused without running them",
    ),
    "other torch file": (
        lambda good: _bytes(lambda b: torch.save({"state_dict": {"w": torch.zeros(2)}}, b)),
        "no 'meta-tutor-checkpoint' marker",
    ),
    "no config": (_edited(lambda s: s.pop("config")), "missing key(s) ['config']"),
    "no policy_meta": (_edited(lambda s: s.pop("policy_meta")), "missing key(s) ['policy_meta']"),
    "no weight": (
        _edited(lambda s: s["params"].pop("l0.weight")),
        "params do not fit the stored architecture: missing ['l0.weight']",
    ),
    "wrong shape": (_edited(_shrink_first_layer), "l0.weight has shape [16, 10], expected [16, 11]"),
    "wrong input size for the env": (_edited(_wrong_but_consistent_arch), "the policy takes"),
    "weights not tensors": (_edited(lambda s: s["params"].update(l0_bias=[0.0])), "floating-point tensor"),
    "NaN weights": (_edited(lambda s: s["params"]["l0.bias"].fill_(float("nan"))), "NaN or infinite"),
    "iteration a string": (_edited(lambda s: s.update(iteration="3")), "'iteration' must be of type integer"),
    "invalid config": (_edited(lambda s: s["config"].update(outer_lr=-1.0)), "its 'config' is not valid"),
    "policy_meta without env": (_edited(lambda s: s["policy_meta"].pop("env")), "lacks key(s) ['env']"),
    "no optimizer (resume)": (_edited(lambda s: s.pop("optimizer")), "missing key(s) ['optimizer']"),
}


def _corrupt(run_dir: Path, tmp_path: Path, case: str) -> Path:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    data = CASES[case][0](run_dir / "checkpoint.pt")
    for name in ("checkpoint.pt", "best.pt"):
        (run / name).write_bytes(data)
    return run


@pytest.mark.parametrize("case", list(CASES))
def test_broken_checkpoint_is_one_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    MARKER.unlink(missing_ok=True)
    run = _corrupt(run_dir, tmp_path, case)
    phrase = CASES[case][1]
    resume_only = case.endswith("(resume)")
    # Python API
    with pytest.raises(ValueError) as e:
        load_checkpoint(run / "checkpoint.pt", resume=True)
    assert str(run / "checkpoint.pt") in str(e.value) and phrase in str(e.value)
    assert "weights_only" not in str(e.value) and "\n" not in str(e.value)
    if not resume_only:
        with pytest.raises(ValueError, match="checkpoint"):
            load_policy(run)
    # CLI: train --resume and evaluate
    commands = [["train", "--resume", "--out", str(run), "--no-progress"]]
    if not resume_only:
        commands.append(
            ["evaluate", "--checkpoint", str(run), "--methods", "maml_ppo", "--out", str(tmp_path / "e")]
        )
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert phrase in err and "weights_only" not in err, err
    assert not MARKER.exists()  # the pickle's code never ran


def test_resume_refuses_a_checkpoint_whose_architecture_differs_from_its_config(
    run_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    state = load_checkpoint(run / "checkpoint.pt")
    state["policy_meta"]["policy"]["hidden_sizes"] = [8]
    for group in ("params", "inner_lrs"):
        g = state[group]
        g["l0.weight"], g["l0.bias"] = g["l0.weight"][:8].clone(), g["l0.bias"][:8].clone()
        g["l1.weight"] = g["l1.weight"][:, :8].clone()
    save_checkpoint(run / "checkpoint.pt", {k: v for k, v in state.items() if k not in ("format", "version")})
    load_policy(run / "checkpoint.pt")  # a consistent policy on its own ...
    cfg = load_config(run / "config.yaml")
    with pytest.raises(ValueError, match="architecture differs from the one its config describes"):
        Trainer(cfg, run, resume=True, progress=False)  # ... but not the run its config describes
