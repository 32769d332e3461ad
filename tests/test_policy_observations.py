"""A tutor given observations of another env says which env settings it expects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meta_rl.envspec import EnvSpec
from meta_rl.policy import PolicySpec, init_params
from meta_rl.tutor import TutorPolicy

KW = {"n_skills": 3, "n_content": 2, "horizon": 10}


def _tutor(privileged: bool = False) -> TutorPolicy:
    env = EnvSpec("MetaTutor/SkillGraph-v0", KW, privileged)
    spec = PolicySpec(env.obs_dim, env.action_nvec, (8,))
    return TutorPolicy(spec, env, init_params(spec, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("privileged", [False, True])
def test_wrong_observation_size_names_the_env_settings(privileged: bool) -> None:
    tutor = _tutor(privileged)
    if privileged:
        tutor = tutor.with_params(tutor.params, tutor.env.distribution().sample(1, "test")[0])
    d = tutor.env.env_obs_dim
    other = EnvSpec("MetaTutor/SkillGraph-v0", {**KW, "n_skills": 4})
    assert other.env_obs_dim != d
    for obs in (np.zeros(other.env_obs_dim), np.zeros((5, other.env_obs_dim)), np.zeros((2, 3, d))):
        for call in (tutor.act, tutor.action_probs):
            with pytest.raises(ValueError) as e:
                call(obs)
            msg = str(e.value)
            assert f"expects ({d},) or (n, {d})" in msg and "MetaTutor/SkillGraph-v0" in msg
            assert "'n_skills': 3" in msg and "mat1" not in msg
    # the right size still works, single and batched
    assert 0 <= tutor.act(np.zeros(d)) < tutor.spec.n_actions
    assert tutor.action_probs(np.zeros((4, d))).shape == (4, tutor.spec.n_actions)
