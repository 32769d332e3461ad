"""Property test of the CLI surface: any ``--set`` item, YAML config, profile file or
response log gives either success or a clear error (exit 2, one line), never a traceback.

The CLI runs in-process (:func:`meta_rl.cli.main`) and stops before any training:
``train --check`` and ``evaluate --check`` validate everything and exit.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import TINY_TRAIN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from meta_rl.cli import main
from meta_rl.config import MAMLPPOConfig, field_help, load_config
from meta_rl.trainer import Trainer

KEYS = sorted(field_help(MAMLPPOConfig))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _run(argv: list[str]) -> tuple[int, str]:
    """Exit code and stderr of the CLI; any exception other than an exit is a failure."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own usage errors (usage line + one error line)
            code = e.code if isinstance(e.code, int) else 2
    return code, err.getvalue()


def _assert_clean(argv: list[str]) -> None:
    code, err = _run(argv)
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line and "warning:" not in line]
        # one error line (argparse puts its usage line before it)
        assert lines and lines[-1].startswith(("meta-tutor", "usage:")) and ": error: " in lines[-1], err
        assert len([line for line in lines if ": error: " in line]) == 1, err
        assert not any(line.startswith("  File ") for line in lines), err


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
keys = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from([f"env_kwargs.{k}" for k in ("n_skills", "horizon", "foo")]),
    st.text(max_size=10),
)


@given(key=keys, raw=st.one_of(st.text(max_size=20), values.map(lambda v: yaml.safe_dump(v).strip())))
@SETTINGS
def test_any_set_item(key: str, raw: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        _assert_clean(["train", "--check", f"--set={key}={raw}", "--out", f"{d}/run"])


@given(data=st.one_of(st.dictionaries(keys, values, max_size=5), values), junk=st.binary(max_size=40))
@SETTINGS
def test_any_yaml_config(data: object, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(yaml.safe_dump(data))
        _assert_clean(["train", "--check", "--config", str(path), "--out", f"{d}/run"])
        path.write_bytes(junk)
        _assert_clean(["train", "--check", "--config", str(path), "--out", f"{d}/run"])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    trainer = Trainer(load_config(None, [*TINY_TRAIN, "n_iterations=1"]), out, progress=False)
    trainer.train()
    trainer.close()
    return out


def _profile_file(env_id: str, profiles: object) -> str:
    return json.dumps({"env_id": env_id, "profiles": profiles}, allow_nan=True)


@given(
    env_id=st.sampled_from(["MetaTutor/SkillGraph-v0", "MetaTutor/ZPD-v0", "Nope-v0"]),
    edits=st.lists(st.tuples(st.text(max_size=16), values), max_size=3),
    n=st.integers(0, 3),
    raw=st.one_of(st.none(), st.binary(max_size=60), values.map(lambda v: json.dumps(v).encode())),
)
@SETTINGS
def test_any_profile_file(run_dir: Path, env_id: str, edits: list, n: int, raw: bytes | None) -> None:
    cfg = load_config(run_dir / "config.yaml")
    good = envs.sample_profiles(cfg.env, 2, split="test", seed=0, **cfg.env_kwargs)
    profiles = [dict(good[i % 2]) for i in range(n)]
    fields = list(good[0])
    for i, (name, value) in enumerate(edits):
        if profiles:
            key = fields[i % len(fields)] if name == "" else name
            profiles[i % len(profiles)][key] = value
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.json"
        path.write_bytes(raw if raw is not None else _profile_file(env_id, profiles).encode())
        argv = [
            "evaluate",
            "--check",
            "--checkpoint",
            str(run_dir),
            "--profiles",
            str(path),
            "--out",
            f"{d}/e",
        ]
        _assert_clean(argv)


HEADERS = {
    "MetaTutor/SkillGraph-v0": "user_id,skill_name,correct,order_id",
    "MetaTutor/SpacedRepetition-v0": "user_id,item_id,timestamp,correct",
}
cells = st.one_of(
    st.integers(-3, 5).map(str),
    st.sampled_from(["0", "1", "a", "b", "", "nan", "1e309", "-1"]),
    st.text(max_size=4),
)


@given(
    env_id=st.sampled_from(sorted(HEADERS)),
    rows=st.lists(st.lists(cells, min_size=1, max_size=5), max_size=12),
    header=st.booleans(),
    junk=st.binary(max_size=8),
)
@SETTINGS
def test_any_response_log(env_id: str, rows: list[list[str]], header: bool, junk: bytes) -> None:
    text = "\n".join(([HEADERS[env_id]] if header else []) + [",".join(r) for r in rows]) + "\n"
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "log.csv"
        log.write_bytes(text.encode("utf-8", "surrogatepass") + junk)
        argv = [
            "calibrate",
            "--env",
            env_id,
            "--log",
            str(log),
            "--out",
            f"{d}/pop.json",
            "--min-responses",
            "1",
        ]
        _assert_clean(argv)


def test_float_values_are_not_lost_in_yaml() -> None:
    # the strategies above rely on yaml.safe_dump writing NaN/inf as YAML's .nan/.inf
    assert math.isnan(yaml.safe_load(yaml.safe_dump(float("nan"))))


def test_valid_inputs_pass_the_checks(run_dir: Path, tmp_path: Path) -> None:
    """The properties above would also hold for a CLI that refused everything: these succeed."""
    assert _run(["train", "--check", "--out", str(tmp_path / "r")]) == (0, "")
    config = tmp_path / "c.yaml"
    config.write_text("n_iterations: 3\nenv_kwargs: {n_skills: 3}\n")
    argv = [
        "train",
        "--check",
        "--config",
        str(config),
        "--set=hidden_sizes=[8]",
        "--out",
        str(tmp_path / "r"),
    ]
    assert _run(argv) == (0, "")
    assert not (tmp_path / "r").exists()  # --check writes nothing
    cfg = load_config(run_dir / "config.yaml")
    profiles = envs.sample_profiles(cfg.env, 3, split="test", seed=0, **cfg.env_kwargs)
    (tmp_path / "p.json").write_text(_profile_file(cfg.env, profiles))
    argv = ["evaluate", "--check", "--checkpoint", str(run_dir), "--profiles", str(tmp_path / "p.json")]
    assert _run([*argv, "--out", str(tmp_path / "e")]) == (0, "")
    assert not (tmp_path / "e").exists()
