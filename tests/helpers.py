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


def kill_and_resume(cfg, out, monkeypatch, at_call: int) -> None:
    """Train ``cfg`` into ``out``, killed (``KeyboardInterrupt``) at the ``at_call``-th rollout
    collection (mid-run: the checkpoint on disk is then between iterations), then resumed to
    the end — for tests that the result equals an uninterrupted run's."""
    import pytest

    from meta_rl.checkpoint import load_checkpoint
    from meta_rl.sampler import Sampler
    from meta_rl.trainer import Trainer

    calls = {"n": 0}
    original = Sampler.collect

    def dying_collect(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Sampler, "collect", dying_collect)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out, progress=False).train()
    monkeypatch.setattr(Sampler, "collect", original)
    assert 0 < load_checkpoint(out / "checkpoint.pt")["iteration"] < cfg.n_iterations
    resumed = Trainer(cfg, out, resume=True, progress=False)
    resumed.train()
    resumed.close()


def central_fd(f, x, h: float = 1e-6):
    """Central finite differences of the scalar function ``f`` at the vector ``x``."""
    import torch

    grad = torch.zeros_like(x)
    for i in range(len(x)):
        e = torch.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def train_tiny(out, sets):
    """Train the config of the ``--set`` strings ``sets`` into ``out`` on one thread; returns ``out``."""
    import torch

    from meta_rl.config import load_config
    from meta_rl.trainer import Trainer

    torch.set_num_threads(1)
    t = Trainer(load_config(None, sets), out, progress=False)
    t.train()
    t.close()
    return out
