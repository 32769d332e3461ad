"""Config validation: every bad value names its key and its source (file or --set item)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from meta_rl.config import load_config
from meta_rl.envspec import EnvSpec


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("outer_lr=.nan", r"--set outer_lr=\.nan: outer_lr must be > 0 and finite, got nan"),
        ("inner_lr=.inf", "inner_lr must be > 0 and finite"),
        ("value_lr=.nan", "value_lr must be > 0 and finite"),
        ("ent_coef=.nan", "ent_coef must be >= 0 and finite"),
        ("gamma=.nan", "gamma and gae_lambda must lie in"),
        ("kl_coef=.nan", "kl_coef must be >= 0 and finite"),
        ("seed=-1", r"--set seed=-1: seed must be an integer in \[0, 2\*\*32\), got -1"),
        ("seed=123456789012345678901234", "seed must be an integer in"),
        ("val_seed=4294967296", "val_seed must be an integer in"),
        ("hidden_sizes=[64,", r"--set hidden_sizes=\[64,: the value is not valid YAML"),
        ("a: b: c=1", "--set expects key=value|not valid YAML|unknown config key"),
    ],
)
def test_bad_values_name_the_key_and_the_set_item(override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(None, [override])


def test_set_errors_are_blamed_on_the_set_item_not_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("outer_lr: 0.001\n")
    with pytest.raises(ValueError) as e:
        load_config(path, ["inner_lr=0.1", "outer_lr=-2", "n_iterations=3"])
    assert str(e.value).startswith("--set outer_lr=-2: outer_lr")
    # a bad file value is blamed on the file, even with valid --set items
    path.write_text("outer_lr: -1\n")
    with pytest.raises(ValueError) as e:
        load_config(path, ["inner_lr=0.1"])
    assert str(e.value).startswith(f"{path}: outer_lr")
    # and an error the --set items fix is no error at all
    assert load_config(path, ["outer_lr=0.01"]).outer_lr == 0.01


def test_empty_or_non_utf8_config_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# only a comment\n")
    with pytest.raises(ValueError, match=f"{empty}: the config file is empty"):
        load_config(empty)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("env: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{latin}: not UTF-8 text"):
        load_config(latin)


def test_large_adam_learning_rate_warns_with_its_value() -> None:
    with pytest.warns(UserWarning, match=r"outer_lr=1e\+30 is an unusually large"):
        cfg = load_config(None, ["outer_lr=1e30"])
    assert cfg.outer_lr == 1e30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(None, ["outer_lr=3e-4", "value_lr=1e-3"])  # the defaults say nothing


def test_unknown_env_kwargs_are_a_value_error_naming_them() -> None:
    with pytest.raises(ValueError, match=r"env_kwargs \{'foo': 1\} do not fit MetaTutor/SkillGraph-v0.*foo"):
        EnvSpec("MetaTutor/SkillGraph-v0", {"foo": 1}).probe  # noqa: B018
