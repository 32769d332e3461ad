"""Helpers shared by the tests: statistical assertions, a tiny training config."""

from __future__ import annotations

from scipy import stats


def assert_binomial(successes: int, trials: int, p: float, alpha: float = 1e-6) -> None:
    """Two-sided exact binomial test; alpha tiny so a correct model essentially never fails."""
    pval = stats.binomtest(int(successes), int(trials), p).pvalue
    rate = successes / trials
    assert pval > alpha, f"{successes}/{trials} = {rate:.4f} vs p = {p:.4f} (p-value {pval:.2g})"


#: ``--set`` overrides of a training run that takes seconds (2 skills, horizon 8, 4 iterations)
TINY_TRAIN = [
    "env_kwargs.n_skills=2",
    "env_kwargs.n_content=2",
    "env_kwargs.horizon=8",
    "meta_batch_size=4",
    "rollouts_per_task=3",
    "hidden_sizes=[16]",
    "outer_epochs=2",
    "val_tasks=3",
    "val_episodes=2",
    "eval_every=2",
    "tensorboard=false",
    "n_iterations=4",
]

#: ``--set`` overrides of an encoder-PPO run that takes seconds on any env (add the env's
#: small settings and ``n_iterations``)
TINY_ENCODER_SETS = [
    "algo=encoder_ppo",
    "meta_batch_size=4",
    "rollouts_per_task=4",
    "hidden_sizes=[16]",
    "encoder_hidden=16",
    "z_dim=4",
    "outer_epochs=2",
    "n_minibatches=2",
    "val_tasks=3",
    "val_episodes=2",
    "eval_every=2",
    "tensorboard=false",
]

#: config of an item-wise training run on a 4-card SpacedRepetition deck that takes seconds
#: (add ``env``; 2 iterations)
TINY_ITEMWISE = {
    "env_kwargs": {"n_items": 4, "horizon": 8, "session_length": 4},
    "architecture": "itemwise",
    "hidden_sizes": [8],
    "meta_batch_size": 3,
    "rollouts_per_task": 2,
    "outer_epochs": 2,
    "val_tasks": 2,
    "val_episodes": 2,
    "eval_every": 2,
    "n_iterations": 2,
    "tensorboard": False,
}


def check_step_data_reproduces_the_tutors_logits(policy, n_students: int = 3, episodes: int = 2) -> None:
    """An encoder tutor's :meth:`~meta_rl.encoder_tutor.EncoderTutor.step_data` of sessions it
    played (with earlier context) carries the conditioning it acted on: the network's logits
    on that data, through :func:`meta_rl.maml.step_logits`, are the logits it sampled from."""
    import torch

    from meta_rl.encoder import EncoderState
    from meta_rl.maml import step_logits
    from meta_rl.policy import expand_params
    from meta_rl.sampler import Sampler

    profiles = policy.env.distribution().sample(n_students, "test", seed=11)
    sampler = Sampler(policy.env, policy.spec)
    state = EncoderState.empty(n_students, policy.espec)
    first = policy.collect(sampler, profiles, episodes, 1, state)
    state.add_sessions(policy.summaries(first), first.mask.any(-1))
    params = expand_params(policy.params, n_students)
    z_steps: list = []
    roll = policy.collect(sampler, profiles, episodes, 2, state, params, z_steps)
    data, _ = policy.step_data(roll, z_steps)
    assert data.bias0 is not None
    with torch.no_grad():
        logits = step_logits(policy.spec, params, data)
    m = roll.mask
    torch.testing.assert_close(logits[m], roll.logits[m], rtol=1e-5, atol=1e-5)
