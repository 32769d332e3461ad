"""The student encoder and encoder-PPO: pooling, no profile leak, online use, resume, identify."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_ENCODER_SETS, check_step_data_reproduces_the_tutors_logits, kill_and_resume

from envs.calibration.logs import read_kt_log
from meta_rl.adaptation import adapt, rollout_step_data
from meta_rl.algorithms.encoder_ppo import Batch, encode_batch
from meta_rl.checkpoint import export_policy, load_checkpoint, load_policy
from meta_rl.config import load_config
from meta_rl.encoder import (
    EncoderSpec,
    EncoderState,
    causal_mean,
    conditioned_logits,
    embed,
    episode_encodings,
    init_encoder,
    phi,
    pool,
    session_summary,
    transition_features,
)
from meta_rl.encoder_tutor import EncoderTutor, OnlineTutor
from meta_rl.envspec import EnvSpec
from meta_rl.identify import Session, encode_history, identify
from meta_rl.log_sessions import skill_graph_sessions
from meta_rl.policy import PolicySpec, log_prob
from meta_rl.sampler import Sampler
from meta_rl.trainer import WALL_COLUMNS, Trainer

#: a training run of encoder-PPO that takes seconds (2 skills, 2 content types, horizon 8)
TINY_ENCODER = [
    "env_kwargs.n_skills=2",
    "env_kwargs.n_content=2",
    "env_kwargs.horizon=8",
    *TINY_ENCODER_SETS,
    "n_iterations=4",
]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("enc") / "run"
    t = Trainer(load_config(None, TINY_ENCODER), out, progress=False)
    t.train()
    t.close()
    return out


def _random_encoder(seed: int = 0) -> tuple[EncoderSpec, dict]:
    spec = EncoderSpec(obs_dim=5, action_nvec=(2, 3), profile_dim=4, cond_dim=8, hidden=8, z_dim=3)
    params = init_encoder(spec, torch.Generator().manual_seed(seed))
    params["norm.mean"] = torch.rand(spec.summary_dim, generator=torch.Generator().manual_seed(seed + 1))
    params["norm.std"] = 0.5 + torch.rand(spec.summary_dim, generator=torch.Generator().manual_seed(seed + 2))
    return spec, params


def _random_sessions(spec: EncoderSpec, n: int, length: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, length + 1, spec.obs_dim, generator=g)
    actions = torch.randint(0, 6, (n, length), generator=g)
    rewards = torch.randn(n, length, generator=g)
    return obs, actions, rewards


def test_pooled_encoding_of_earlier_sessions_ignores_their_order() -> None:
    spec, params = _random_encoder()
    obs, actions, rewards = _random_sessions(spec, 7, 6, seed=1)
    mask = torch.ones(7, 6, dtype=torch.bool)
    mask[2, 4:] = False  # sessions of different lengths
    summ = session_summary(episode_encodings(spec, params, obs, actions, rewards), mask)
    perm = torch.tensor([3, 0, 6, 2, 5, 1, 4])
    c1, n1 = pool(summ)
    c2, n2 = pool(summ[perm])
    zero = torch.zeros_like(c1)
    z1 = embed(params, c1, n1, zero, torch.zeros(()))
    z2 = embed(params, c2, n2, zero, torch.zeros(()))
    torch.testing.assert_close(z1, z2, rtol=0, atol=1e-6)
    assert not torch.allclose(z1, embed(params, summ[:3].mean(0), torch.tensor(3.0), zero, torch.zeros(())))
    # online: one session at a time, in either order, gives the same z as pooling them at once
    a, b = EncoderState.empty(1, spec), EncoderState.empty(1, spec)
    for i in range(7):
        a.add_sessions(summ[i : i + 1].unsqueeze(0))
        b.add_sessions(summ[perm[i] : perm[i] + 1].unsqueeze(0))
    torch.testing.assert_close(a.z(params)[0], z1, rtol=0, atol=1e-6)
    torch.testing.assert_close(b.z(params)[0], z1, rtol=0, atol=1e-6)
    # through the Python identify() path: a shuffled history encodes the same
    hist = [Session(obs[i, : int(mask[i].sum()) + 1].numpy(), actions[i, : int(mask[i].sum())].numpy(),
                    rewards[i, : int(mask[i].sum())].numpy()) for i in range(7)]  # fmt: skip
    pol_spec = PolicySpec(spec.obs_dim, spec.action_nvec, (spec.cond_dim,))
    env = EnvSpec("MetaTutor/SkillGraph-v0", {"n_skills": 1, "n_content": 1, "horizon": 4})
    tutor = EncoderTutor(spec=pol_spec, env=env, params={}, encoder_spec=spec, encoder=params)
    z_hist = encode_history(tutor, hist)
    z_shuf = encode_history(tutor, [hist[int(i)] for i in perm])
    torch.testing.assert_close(z_hist, z_shuf, rtol=0, atol=1e-6)
    torch.testing.assert_close(z_hist, z1, rtol=0, atol=1e-5)


def test_causal_running_mean_is_the_online_running_sum() -> None:
    spec, params = _random_encoder(3)
    obs, actions, rewards = _random_sessions(spec, 2, 5, seed=4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    enc = episode_encodings(spec, params, obs, actions, rewards)
    cur, n_cur = causal_mean(enc, mask)
    state = EncoderState.empty(2, spec)
    for t in range(5):
        torch.testing.assert_close(state.cur_sum / state.n_cur.clamp_min(1).unsqueeze(-1), cur[:, t])
        assert torch.equal(state.n_cur, n_cur[:, t])
        x = transition_features(spec, obs[:, t], actions[:, t], rewards[:, t], obs[:, t + 1])
        state.add_steps(phi(params, x), torch.ones(2, dtype=torch.bool))
    # z exists before the first step (k = 0, t = 0): the prior, the same for every student
    z0 = EncoderState.empty(2, spec).z(params)
    torch.testing.assert_close(z0[0], z0[1])


def test_no_profile_leak(tiny_run: Path) -> None:
    """z and the action probabilities are functions of the interactions only: the same data
    with another student's profile as the (training-only) target gives the same z and logits,
    and an online tutor that never sees a profile reproduces the tutor's own probabilities."""
    pol = load_policy(tiny_run)
    assert isinstance(pol, EncoderTutor)
    env = pol.env
    assert not env.privileged and pol.espec.obs_dim == env.env_obs_dim
    profiles = env.distribution().sample(3, "test", seed=4)
    others = env.distribution().sample(3, "test", seed=99)
    roll = pol.collect(Sampler(env, pol.spec), profiles, 2, seed=4096, state=EncoderState.empty(3, pol.espec))
    cfg = load_config(None, TINY_ENCODER)

    def z_and_logits(profs) -> tuple[torch.Tensor, torch.Tensor]:
        b = Batch(
            roll.obs.unsqueeze(1), roll.actions.unsqueeze(1), roll.rewards.unsqueeze(1),
            roll.mask.unsqueeze(1), roll.logp.unsqueeze(1), torch.zeros_like(roll.logp).unsqueeze(1),
            torch.from_numpy(env.profile_features(profs)),
        )  # fmt: skip
        with torch.no_grad():
            z = encode_batch(cfg, pol.espec, pol.encoder, b).z
            return z, pol.logits(b.obs[..., :-1, :], z)

    z_a, logits_a = z_and_logits(profiles)
    z_b, logits_b = z_and_logits(others)
    assert torch.equal(z_a, z_b) and torch.equal(logits_a, logits_b)
    # the logits recomputed from the stored interactions are those the tutor sampled from
    torch.testing.assert_close(logits_a[:, 0][roll.mask], roll.logits[roll.mask], rtol=0, atol=1e-5)
    # an online tutor given only the interactions acts with the same probabilities
    online = OnlineTutor(pol)
    for t in range(int(roll.lengths[1, 0])):
        probs = online.action_probs(roll.obs[1, 0, t].numpy())
        a = torch.arange(pol.spec.n_actions)
        expect = log_prob(pol.spec, roll.logits[1, 0, t].expand(len(a), -1), a).exp().numpy()
        np.testing.assert_allclose(probs, expect, atol=1e-5)
        _record(online, roll, 1, 0, t)
    with pytest.raises(ValueError, match="encoder_ppo infers the student"):
        load_config(None, [*TINY_ENCODER, "privileged=true"])


def _record(online: OnlineTutor, roll, i: int, e: int, t: int) -> None:
    """Give ``online`` step ``t`` of episode ``e`` of student ``i`` of ``roll``."""
    online.record(
        roll.obs[i, e, t].numpy(), int(roll.actions[i, e, t]), float(roll.rewards[i, e, t]),
        roll.obs[i, e, t + 1].numpy(),
    )  # fmt: skip


def test_exported_online_tutor_acts_as_the_training_policy(tiny_run: Path, tmp_path: Path) -> None:
    """Export, load without the trainer, replay a history: the same probabilities (and the same
    deterministic actions) as the in-training policy on that history, context included."""
    trained = Trainer(load_config(None, TINY_ENCODER), tiny_run, resume=True, progress=False)
    in_training = trained.policy()
    trained.close()
    export_policy(in_training, tmp_path / "export")
    exported = load_policy(tmp_path / "export")
    assert isinstance(exported, EncoderTutor) and exported.meta() == in_training.meta()
    env = in_training.env
    profiles = env.distribution().sample(2, "test", seed=7)
    sampler = Sampler(env, in_training.spec)
    state = EncoderState.empty(2, in_training.espec)
    context = in_training.collect(sampler, profiles, 3, seed=8192, state=state)
    state.add_sessions(in_training.summaries(context))
    roll = in_training.collect(sampler, profiles, 2, seed=3 * 8192, state=state)

    online = OnlineTutor(exported, deterministic=True)
    student = 1
    for e in range(3):  # the student's earlier sessions, one interaction at a time
        for t in range(int(context.lengths[student, e])):
            _record(online, context, student, e, t)
        online.end_session()
    a = torch.arange(in_training.spec.n_actions)
    for t in range(int(roll.lengths[student, 0])):
        obs = roll.obs[student, 0, t].numpy()
        expect = log_prob(in_training.spec, roll.logits[student, 0, t].expand(len(a), -1), a).exp().numpy()
        np.testing.assert_allclose(online.action_probs(obs), expect, atol=1e-5)
        assert online.act(obs) == int(np.argmax(expect))
        _record(online, roll, student, 0, t)
    with pytest.raises(ValueError, match="OnlineTutor"):
        exported.act(roll.obs[0, 0, 0].numpy())
    with pytest.raises(ValueError, match="adapts by context"):
        adapt(exported, profiles[0])


def test_context_from_swaps_earlier_sessions_only(tiny_run: Path, monkeypatch) -> None:
    """The identity swap is the plain curve bit for bit; with a real swap, student i's state
    receives the sessions played with student context_from[i] (the first ones are played with
    no context, so they are the plain curve's sessions, permuted) and k = 0 is unchanged; bad
    indices are one clear error."""
    pol = load_policy(tiny_run)
    profiles = pol.env.distribution().sample(4, "test", seed=3)
    received: list[torch.Tensor] = []
    add = EncoderState.add_sessions

    def record(self, summaries, valid=None):
        received.append(summaries.clone())
        return add(self, summaries, valid)

    monkeypatch.setattr(EncoderState, "add_sessions", record)
    plain = pol.context_adaptation_curve(profiles, 1, 3, eval_episodes=2, seed=5)
    same = pol.context_adaptation_curve(profiles, 1, 3, eval_episodes=2, seed=5, context_from=[0, 1, 2, 3])
    np.testing.assert_array_equal(plain.returns, same.returns)
    swapped = pol.context_adaptation_curve(profiles, 1, 3, eval_episodes=2, seed=5, context_from=[1, 2, 3, 0])
    assert len(received) == 3
    torch.testing.assert_close(received[1], received[0], rtol=0, atol=0)
    torch.testing.assert_close(received[2], received[0][[1, 2, 3, 0]], rtol=0, atol=0)
    np.testing.assert_array_equal(plain.returns[:, 0], swapped.returns[:, 0])
    for bad in ([0, 1, 2], [0, 1, 2, 4]):
        with pytest.raises(ValueError, match="context_from must give one student index"):
            pol.context_adaptation_curve(profiles, 1, 3, eval_episodes=2, seed=5, context_from=bad)


def test_step_data_carries_the_conditioning_the_tutor_acted_on(tiny_run: Path) -> None:
    check_step_data_reproduces_the_tutors_logits(load_policy(tiny_run))


def test_a_gradient_step_per_session_is_the_gradient_of_the_conditioned_loss(tiny_run: Path) -> None:
    """With a step size, each session of context is also one gradient step per student on the
    policy network, ``θ_i − α ∇L_inner(θ_i)``: the same as autograd of the inner objective
    written directly with :func:`~meta_rl.encoder.conditioned_logits` (``z`` and the encoder
    fixed); ``k = 0`` is the context-only curve's, the students' networks move apart."""
    pol = load_policy(tiny_run)
    profiles = pol.env.distribution().sample(3, "test", seed=3)
    plain = pol.context_adaptation_curve(profiles, 1, 3, eval_episodes=2, seed=5)
    steps: list = []
    collect = EncoderTutor.collect

    def spy(self, *a, **kw):
        roll = collect(self, *a, **kw)
        steps.append((roll, list(a[6])))
        return roll

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(EncoderTutor, "collect", spy)
        tuned = pol.context_adaptation_curve(profiles, 1, 3, eval_episodes=2, seed=5, lr=0.3)
    np.testing.assert_array_equal(plain.returns[:, 0], tuned.returns[:, 0])
    roll, z_steps = steps[1]  # the adaptation session of step k = 0 (after the k = 0 evaluation)
    z = torch.stack(z_steps, 2)
    z = torch.cat([z, z.new_zeros(*z.shape[:2], roll.actions.shape[2] - z.shape[2], z.shape[-1])], 2)
    data, _ = rollout_step_data(pol.spec, roll, pol.advantage, pol.value_params)
    for i in range(3):
        theta = {k: v.detach().clone().requires_grad_(True) for k, v in pol.params.items()}
        logits = conditioned_logits(pol.spec, theta, pol.encoder, data.obs[i], z[i])
        ratio = torch.exp(log_prob(pol.spec, logits, data.actions[i]) - data.logp_old[i])
        m = data.mask[i].float()
        loss = -(ratio * data.adv[i] * m).sum() / m.sum()
        grads = torch.autograd.grad(loss, list(theta.values()))
        for (k, v), g in zip(theta.items(), grads):
            torch.testing.assert_close(tuned.params[k][i], v.detach() - 0.3 * g, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(tuned.params["l0.weight"][0], tuned.params["l0.weight"][1])


def test_a_per_group_step_size_fine_tunes_an_encoder_tutor_too(tiny_run: Path) -> None:
    """The evaluation's (shared, per-item) step-size pairs reach an encoder tutor as learned
    per-parameter rates (no scalar ``lr``): it must still take the step. This network has no
    per-item offsets, so the pair (0.3, ·) is the scalar 0.3."""
    from meta_rl.adaptation import adaptation_curve
    from meta_rl.evaluation.step_sizes import with_step_size

    pol = load_policy(tiny_run)
    profiles = pol.env.distribution().sample(3, "test", seed=3)
    curves = []
    for step in ((0.3, 0.9), 0.3):
        p, lr = with_step_size(pol, step)
        curves.append(adaptation_curve(p, profiles, 1, 3, 2, seed=5, inner=p.inner, lr=lr))
    for k in pol.params:
        torch.testing.assert_close(curves[0].params[k], curves[1].params[k], rtol=1e-6, atol=1e-7)
    assert not torch.equal(curves[0].params["l0.weight"][0], pol.params["l0.weight"])


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]


def test_resume_of_a_killed_run_is_bit_identical(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    kill_and_resume(load_config(None, TINY_ENCODER), tmp_path / "killed", monkeypatch, at_call=8)
    assert _rows(tmp_path / "killed") == _rows(tiny_run)
    a = load_checkpoint(tiny_run / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    for group in ("params", "encoder"):
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            assert torch.equal(a[group][k], b[group][k]), (group, k)


def test_checkpoint_with_a_broken_encoder_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    state = load_checkpoint(tiny_run / "checkpoint.pt")
    state["encoder"]["rho.l0.weight"] = state["encoder"]["rho.l0.weight"][:, :3]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt .*encoder\['rho.l0.weight'\] has shape"):
        load_checkpoint(tmp_path / "bad.pt")


def test_log_sessions_rebuild_the_env_observations(tiny_run: Path, tmp_path: Path) -> None:
    """A quiz-only SkillGraph episode written as an answer log and read back with the
    calibration readers gives exactly the env's observations."""
    pol = load_policy(tiny_run)
    env = pol.env
    venv = env.make_vector_env(1)
    obs, _ = venv.reset(seed=3, options={"profiles": env.distribution().sample(1, "test", seed=3)})
    k, c = env.probe.n_skills, env.probe.n_content
    skills = [0, 1, 1, 0, 0, 1, 0, 1]
    observed, rows = [obs[0]], []
    for t, sk in enumerate(skills):
        obs, _, term, trunc, _ = venv.step(np.array([sk * (c + 1) + c]))
        rows.append(("u1", f"skill_{sk:02d}", int(obs[0][3 * k + sk]), t))
        observed.append(obs[0])
        if term[0] or trunc[0]:
            break
    path = tmp_path / "answers.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("user_id", "skill_name", "correct", "order_id"), *rows])
    (sessions,) = skill_graph_sessions(pol.env, read_kt_log(path))
    assert len(sessions) == 1
    np.testing.assert_array_equal(sessions[0].obs[: len(observed) - 1], np.stack(observed[:-1]))
    np.testing.assert_array_equal(sessions[0].actions, np.array(skills) * (c + 1) + c)
    res = identify(pol, sessions)
    assert [f.name for f in res.fields] == [s.name for s in env.probe.profile_cls.FIELDS]
    assert all(np.all(f.std > 0) for f in res.fields)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "meta_rl.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_identify_cli(tiny_run: Path, tmp_path: Path) -> None:
    good = tmp_path / "answers.csv"
    good.write_text(
        "user_id,skill_name,correct,order_id\n"
        + "".join(
            f"s{u},skill_0{(i + u) % 2},{(i * 7 + u) % 3 % 2},{i}\n" for u in range(2) for i in range(11)
        )
    )
    out = _cli("identify", "--checkpoint", str(tiny_run), "--log", str(good), "--reference", "8",
               "--json", str(tmp_path / "id.json"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("nearest training student") == 2 * 3
    assert "student 1 (2 session(s) from the log)" in out.stdout and "content_affinity" in out.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,skill_name,correct,order_id\nu1,skill_00,1,0\nu1,skill_01,maybe,1\n")
    out = _cli("identify", "--checkpoint", str(tiny_run), "--log", str(bad))
    assert out.returncode == 2
    assert f"{bad}: line 3: correct must be 0 or 1" in out.stderr and "Traceback" not in out.stderr


def test_an_encoder_that_does_not_read_rewards_ignores_them() -> None:
    spec, params = _random_encoder(5)
    blind = EncoderSpec(**{**spec.to_dict(), "action_nvec": spec.action_nvec, "reads_reward": False})
    obs, actions, rewards = _random_sessions(spec, 3, 4, seed=6)
    mask = torch.ones(3, 4, dtype=torch.bool)
    for s, differs in ((spec, True), (blind, False)):
        a = session_summary(episode_encodings(s, params, obs, actions, rewards), mask)
        b = session_summary(episode_encodings(s, params, obs, actions, rewards + 1.0), mask)
        assert (not torch.equal(a, b)) == differs
    assert EncoderSpec.from_dict(blind.to_dict()) == blind
