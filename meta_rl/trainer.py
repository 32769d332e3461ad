"""The training loop: MAML-PPO (meta-learning) and pooled PPO in one :class:`Trainer`.

MAML-PPO, one iteration (equations in :mod:`meta_rl.maml`):

1. draw ``meta_batch_size`` students (tasks) from the ``train`` split;
2. for ``k = 0 … K − 1`` (``K = inner_steps``): collect ``rollouts_per_task`` episodes
   per task with ``θ_i^k`` (all tasks in one vector env), estimate advantages with a
   baseline fitted per task, and take the inner step ``θ_i^{k+1} = θ_i^k − α ∇L_inner``;
3. collect ``rollouts_per_task`` post-update episodes per task with ``θ'_i = θ_i^K``;
4. for ``outer_epochs`` epochs (× ``n_minibatches`` minibatches of tasks) minimise the
   meta-objective with Adam: ``θ'_i(θ)`` is recomputed from the stored pre-update data
   every time, so the gradient flows through the adaptation (second order unless
   ``first_order``); the outer gradient is clipped to ``max_grad_norm``; the epochs stop
   early once the post-update policy's approximate KL exceeds ``1.5 · target_kl``.

Pooled PPO (``algo: ppo``, and the first ``pretrain_iterations`` of a MAML-PPO run as a
warm start): collect one episode from each of ``pooled_episodes`` fresh ``train``
students, one baseline and advantage normalisation over the whole batch, and PPO's
clipped surrogate for ``outer_epochs`` epochs of ``n_minibatches`` minibatches of
episodes. Same network. The budget is matched in *episodes*, not env steps: by default
``pooled_episodes = meta_batch_size · rollouts_per_task · (inner_steps + 1)``, the
number of episodes one MAML-PPO iteration collects. The env steps per iteration are
equal only when episodes have the same length under both algorithms (e.g. always run
to the horizon); where episodes end early (a ZPD student who quits) the two budgets in
env steps differ and depend on the policy. The real count is recorded: the
``env_steps`` column of ``metrics.csv`` and ``env_steps`` in every checkpoint hold the
cumulative env steps of all training rollouts (validation excluded).

Every ``eval_every`` iterations the tutor is validated with adaptation on fixed
students of the ``val`` split (:func:`meta_rl.adaptation.adaptation_curve`); the best
checkpoint by post-adaptation validation return (or pre-adaptation, ``select_on: pre``)
is kept as ``best.pt``.

Run directory: ``config.yaml`` (resolved), ``checkpoint.pt`` (latest, written every
iteration), ``best.pt`` (written before ``checkpoint.pt`` of the same iteration, so a
kill between the two is repaired by the resumed run), ``metrics.csv`` (one row per
iteration) and ``tb/`` (TensorBoard). Randomness comes from one seeded numpy generator
whose state is checkpointed, so a resumed run continues exactly as the uninterrupted
one, and the same seed and config give identical ``metrics.csv`` (apart from the
wall-time columns).
Non-finite losses or parameters stop the run (:class:`TrainingDiverged`) before the
checkpoint of that iteration is written, so the last good checkpoint stays intact.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.profiles import ProfileDistribution
from meta_rl.adaptation import adaptation_curve, rollout_step_data
from meta_rl.checkpoint import load_checkpoint, load_policy, one_line_error, save_checkpoint
from meta_rl.config import MAMLPPOConfig, TrainConfig, make_config, save_config
from meta_rl.envspec import EnvSpec
from meta_rl.maml import InnerUpdate, OuterSettings, StepData, inner_step, meta_loss, policy_logits
from meta_rl.policy import PolicySpec, init_params, kl_divergence, state_value
from meta_rl.ppo import masked_mean, value_loss
from meta_rl.resources import check_memory, training_memory
from meta_rl.runlock import RunLock
from meta_rl.sampler import Rollouts, Sampler, nan_mean, spaced_seed
from meta_rl.tutor import AdvantageSettings, TutorPolicy

#: metrics.csv columns that depend on the machine's speed, not on the computation
WALL_COLUMNS = ("iter_time_s", "wall_time_s", "steps_per_s")


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the message names the iteration and quantity."""


class Trainer:
    """Trains a tutor from a :class:`~meta_rl.config.TrainConfig` into ``out_dir``.

    ``resume=True`` continues from ``out_dir/checkpoint.pt``; otherwise ``out_dir`` must
    not hold a run yet.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | os.PathLike[str],
        resume: bool = False,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg = config
        self.out = Path(out_dir)
        self.progress = progress
        # one writer per run directory, from before the first write until close() (or exit)
        self._lock = RunLock(self.out, "training", create=not resume)
        torch.set_num_threads(cfg.num_threads)
        self.is_maml = isinstance(cfg, MAMLPPOConfig)
        self.env = EnvSpec(cfg.env, cfg.env_kwargs, cfg.privileged)
        self.spec = policy_spec(cfg, self.env)
        # refuse what cannot fit before the first allocation (META_TUTOR_NO_MEMORY_CHECK=1 skips)
        check_memory(training_memory(cfg, self.spec, self.env))
        self.inner = InnerUpdate(cfg.inner_lr, cfg.inner_objective, cfg.inner_ent_coef)
        self.adv = AdvantageSettings(cfg.gamma, cfg.gae_lambda, cfg.baseline, cfg.normalize_advantages)
        self.outer = OuterSettings(
            cfg.clip_eps, cfg.ent_coef, getattr(cfg, "kl_coef", 0.0), getattr(cfg, "first_order", False)
        )
        self.sampler = make_sampler(cfg, self.env, self.spec)
        self.dist = self._population()
        self.val_profiles = self.dist.sample(cfg.val_tasks, "val", seed=cfg.val_seed)

        self.rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.theta = {k: v.requires_grad_(True) for k, v in init_params(self.spec, gen).items()}
        self.lrs: dict[str, Tensor] | None = None
        if getattr(cfg, "meta_sgd", False):
            first = {k: cfg.inner_lr for k in self.theta}
            if getattr(cfg, "item_bias_lr", 0.0) > 0:
                first["item_bias"] = cfg.item_bias_lr
            self.lrs = {k: torch.full_like(v, first[k]).requires_grad_(True) for k, v in self.theta.items()}
        self.value: dict[str, Tensor] | None = None
        self.value_opt: torch.optim.Optimizer | None = None
        if cfg.baseline == "value_net":
            vparams = init_params(self.spec, gen, out_dim=1, out_gain=1.0)
            self.value = {k: v.requires_grad_(True) for k, v in vparams.items()}
            self.value_opt = torch.optim.Adam(list(self.value.values()), lr=cfg.value_lr, eps=1e-5)
        if cfg.init_from:
            self._warm_start(cfg.init_from)
        self.opt = torch.optim.Adam(self._outer_params(), lr=cfg.outer_lr, eps=1e-5)

        self.iteration = 0
        self.env_steps = 0
        self.best_val = -math.inf
        self.wall_time = 0.0
        self.columns = self._columns()
        self.resumed = resume
        self._writer: Any = None
        if resume:
            self._resume()
        else:
            self._start_run_dir()

    # ------------------------------------------------------------ public API
    def policy(self) -> TutorPolicy:
        """The current tutor (detached copy)."""
        return TutorPolicy(
            spec=self.spec,
            env=self.env,
            params={k: v.detach().clone() for k, v in self.theta.items()},
            inner=self.inner,
            advantage=self.adv,
            rollouts_per_step=self.cfg.rollouts_per_task,
            inner_lrs=None if self.lrs is None else {k: v.detach().clone() for k, v in self.lrs.items()},
            value_params=None
            if self.value is None
            else {k: v.detach().clone() for k, v in self.value.items()},
            algo=self.cfg.algo,
        )

    def train(self, max_iterations: int | None = None) -> dict[str, Any]:
        """Run until ``n_iterations`` (or ``max_iterations`` more); returns the last row."""
        cfg = self.cfg
        stop = (
            cfg.n_iterations
            if max_iterations is None
            else min(cfg.n_iterations, self.iteration + max_iterations)
        )
        writer = self._tensorboard()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=cfg.n_iterations, initial=self.iteration, desc=cfg.algo, unit="it", dynamic_ncols=True
            )
        row: dict[str, Any] = {}
        try:
            while self.iteration < stop:
                row = self._one_iteration()
                if writer is not None:
                    for k, v in row.items():
                        if isinstance(v, float) and math.isfinite(v):
                            writer.add_scalar(k, v, row["iteration"])
                    writer.flush()
                if bar is not None:
                    post = {"ret": f"{row['return_post']:.3f}"}
                    if math.isfinite(self.best_val):
                        post["val_best"] = f"{self.best_val:.3f}"
                    bar.set_postfix(post)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return row

    def close(self) -> None:
        """Close the TensorBoard writer, release the sampler's workers (Ray actors) and the
        run directory's lock (:mod:`meta_rl.runlock`)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()
        self._lock.release()

    # ------------------------------------------------------------- iteration
    def _one_iteration(self) -> dict[str, Any]:
        cfg, it = self.cfg, self.iteration
        t0 = time.perf_counter()
        pretrain = self.is_maml and it < getattr(cfg, "pretrain_iterations", 0)
        if self.is_maml and not pretrain:
            row = self._maml_iteration(it)
        else:
            row = self._pooled_iteration(it)
        self.env_steps += row.pop("_env_steps")
        row["env_steps"] = self.env_steps
        improved = False
        if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.n_iterations:
            improved = self._validate(row)
        dt = time.perf_counter() - t0
        self.wall_time += dt
        row["iter_time_s"] = dt
        row["wall_time_s"] = self.wall_time
        row["steps_per_s"] = row.pop("_iter_steps") / dt
        self._append_metrics(row)
        self.iteration = it + 1
        state = self._state()
        # best.pt first: a kill between the two writes leaves checkpoint.pt at the previous
        # iteration, so the resumed run repeats this iteration (deterministically) and writes
        # best.pt again. The other order would resume with best_val already at the new score
        # and never rewrite the stale best.pt unless a later validation beat it.
        if improved:
            save_checkpoint(self.out / "best.pt", state)
        save_checkpoint(self.out / "checkpoint.pt", state)
        return row

    def _population(self) -> ProfileDistribution:
        """The students to train and validate on: the env's population or a calibrated one."""
        if not self.cfg.population:
            return self.env.distribution()
        from envs.calibration import population_distribution

        return population_distribution(self.cfg.population, self.cfg.env, self.cfg.env_kwargs)

    def _next_seed(self) -> int:
        return spaced_seed(int(self.rng.integers(0, 2**31 - 1)))

    def _detached_lr(self) -> float | dict[str, Tensor]:
        return float(self.inner.lr) if self.lrs is None else {k: v.detach() for k, v in self.lrs.items()}

    def _maml_iteration(self, it: int) -> dict[str, Any]:
        cfg, spec = self.cfg, self.spec
        n_t, n_e = cfg.meta_batch_size, cfg.rollouts_per_task
        profiles = self.dist.sample(n_t, "train", rng=self.rng)
        params = {k: v.detach().unsqueeze(0).expand(n_t, *v.shape) for k, v in self.theta.items()}
        lr = self._detached_lr()
        rolls: list[Rollouts] = []
        datas: list[StepData] = []
        rets: list[Tensor] = []
        for k in range(cfg.inner_steps + 1):
            roll = self.sampler.collect(params, profiles, n_e, seed=self._next_seed())
            self._check(it, "episode return", torch.as_tensor(roll.returns))
            data, ret = rollout_step_data(spec, roll, self.adv, self._value_detached())
            rolls.append(roll)
            datas.append(data)
            rets.append(ret)
            if k < cfg.inner_steps:
                params = inner_step(spec, params, data, lr, self.inner, create_graph=False)
        with torch.no_grad():
            pre = policy_logits(spec, {k: v.detach() for k, v in self.theta.items()}, datas[0].obs)
            post = policy_logits(spec, params, datas[0].obs)
            adapt_kl = float(masked_mean(kl_divergence(spec, pre, post), datas[0].mask))
        inner_datas, outer_data = datas[:-1], datas[-1]

        def loss_fn(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            sub = [_select(d, idx, 0) for d in inner_datas]
            lr_arg = float(self.inner.lr) if self.lrs is None else self.lrs
            return meta_loss(
                spec, self.theta, lr_arg, self.inner, sub, _select(outer_data, idx, 0), self.outer
            )

        stats = self._optimise(it, loss_fn, n_t, 0, datas, rets)
        row = self._row(it, "maml", rolls[0], rolls[-1], stats)
        row["adapt_kl"] = adapt_kl
        row["_env_steps"] = sum(r.env_steps for r in rolls)
        row["_iter_steps"] = row["_env_steps"]
        return row

    def _pooled_iteration(self, it: int) -> dict[str, Any]:
        cfg, spec = self.cfg, self.spec
        n = cfg.pooled_episodes
        profiles = self.dist.sample(n, "train", rng=self.rng)
        theta = {k: v.detach() for k, v in self.theta.items()}
        roll = self.sampler.collect(theta, profiles, 1, seed=self._next_seed())
        self._check(it, "episode return", torch.as_tensor(roll.returns))
        data, ret = rollout_step_data(spec, roll, self.adv, self._value_detached(), pooled=True)
        # one "task" holding every episode, so minibatches split episodes (dim 1)
        data = StepData(*(None if x is None else x.reshape(1, n, *x.shape[2:]) for x in data))
        ret = ret.reshape(1, n, -1)
        lr_unused = float(self.inner.lr)

        def loss_fn(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            return meta_loss(spec, self.theta, lr_unused, self.inner, [], _select(data, idx, 1), self.outer)

        stats = self._optimise(it, loss_fn, n, 1, [data], [ret])
        row = self._row(it, "ppo", roll, roll, stats)
        row["adapt_kl"] = float("nan")
        row["_env_steps"] = roll.env_steps
        row["_iter_steps"] = roll.env_steps
        return row

    def _optimise(
        self,
        it: int,
        loss_fn: Callable[[Tensor], tuple[Tensor, dict[str, Tensor]]],
        n_items: int,
        dim: int,
        datas: list[StepData],
        rets: list[Tensor],
    ) -> dict[str, float]:
        """Epochs × minibatches of Adam steps on ``loss_fn`` (and the value network)."""
        cfg = self.cfg
        sums: dict[str, float] = {}
        count, epochs_done, stop = 0, 0, False
        params = self._outer_params()
        for _ in range(cfg.outer_epochs):
            perm = torch.from_numpy(self.rng.permutation(n_items))
            for idx in perm.chunk(min(cfg.n_minibatches, n_items)):
                loss, st = loss_fn(idx)
                self._check(it, "loss", loss)
                for k, v in st.items():
                    self._check(it, k, v)
                if cfg.target_kl and float(st["approx_kl"]) > 1.5 * cfg.target_kl:
                    stop = True
                    break
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
                gn = torch.nn.utils.clip_grad_norm_(params, max_norm)
                self._check(it, "gradient norm", gn)
                self.opt.step()
                for k, v in self._named_outer_params():
                    self._check(it, f"parameter {k}", v.detach())
                vl = self._value_step(it, idx, dim, datas, rets)
                parts = {"loss": float(loss.detach()), "grad_norm": float(gn), "value_loss": vl}
                parts.update({k: float(v) for k, v in st.items()})
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            if stop:
                break
            epochs_done += 1
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out["epochs"] = float(epochs_done)
        out["updates"] = float(count)
        return out

    def _value_step(self, it: int, idx: Tensor, dim: int, datas: list[StepData], rets: list[Tensor]) -> float:
        if self.value is None or self.value_opt is None:
            return float("nan")
        losses = []
        for d, r in zip(datas, rets):
            d = _select(d, idx, dim)
            r = r.index_select(dim, idx)
            t = d.obs.shape[0]
            pred = state_value(self.spec, self.value, d.obs.reshape(t, -1, d.obs.shape[-1])).reshape(r.shape)
            losses.append(value_loss(pred, r, d.mask))
        loss = torch.stack(losses).mean()
        self._check(it, "value loss", loss)
        self.value_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.value_opt.step()
        return float(loss.detach())

    def _value_detached(self) -> dict[str, Tensor] | None:
        return None if self.value is None else {k: v.detach() for k, v in self.value.items()}

    def _validate(self, row: dict[str, Any]) -> bool:
        cfg = self.cfg
        res = adaptation_curve(
            self.policy(),
            self.val_profiles,
            steps=cfg.val_adapt_steps,
            rollouts_per_step=cfg.rollouts_per_task,
            eval_episodes=cfg.val_episodes,
            seed=cfg.val_seed,
            sampler=self.sampler,
        )
        curve = res.mean_returns()
        for k, v in enumerate(curve):
            row[f"val_return_k{k}"] = float(v)
        for name in self.env.metric_names:
            m = res.mean_metric(name)
            row[f"val_{name}_k0"] = float(m[0])
            row[f"val_{name}_k{cfg.val_adapt_steps}"] = float(m[-1])
        score = float(curve[-1] if cfg.select_on == "post" else curve[0])
        if score > self.best_val:
            self.best_val = score
            return True
        return False

    def _row(
        self, it: int, phase: str, pre: Rollouts, post: Rollouts, stats: Mapping[str, float]
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"iteration": it, "phase": phase}
        row["return_pre"] = float(pre.returns.mean())
        row["return_post"] = float(post.returns.mean())
        for name in self.env.metric_names:
            row[f"{name}_pre"] = nan_mean(pre.metrics[name])
            row[f"{name}_post"] = nan_mean(post.metrics[name])
        for k in (
            "loss",
            "surrogate",
            "entropy",
            "approx_kl",
            "clip_fraction",
            "kl_pre",
            "grad_norm",
            "value_loss",
        ):
            row[k] = float(stats.get(k, float("nan")))
        row["epochs"] = stats.get("epochs", 0.0)
        row["inner_lr"] = (
            float(self.inner.lr)
            if self.lrs is None
            else float(torch.cat([v.detach().reshape(-1) for v in self.lrs.values()]).mean())
        )
        return row

    # ------------------------------------------------------------ parameters
    def _named_outer_params(self) -> list[tuple[str, Tensor]]:
        named = list(self.theta.items())
        if self.lrs is not None:
            named += [(f"inner_lr.{k}", v) for k, v in self.lrs.items()]
        return named

    def _outer_params(self) -> list[Tensor]:
        return [v for _, v in self._named_outer_params()]

    def _warm_start(self, path: str) -> None:
        src = load_policy(path)
        if src.spec != self.spec:
            raise ValueError(f"init_from {path}: architecture {src.spec} differs from this run's {self.spec}")
        with torch.no_grad():
            for k, v in self.theta.items():
                v.copy_(src.params[k])

    @staticmethod
    def _check(it: int, name: str, value: Tensor) -> None:
        if not bool(torch.isfinite(value).all()):
            raise TrainingDiverged(
                f"iteration {it}: {name} is not finite; training stopped, the last good checkpoint is kept"
            )

    # ------------------------------------------------------------ run files
    def _columns(self) -> list[str]:
        metric_cols = [f"{m}_{s}" for m in self.env.metric_names for s in ("pre", "post")]
        kv = self.cfg.val_adapt_steps
        val_cols = [f"val_return_k{k}" for k in range(kv + 1)]
        val_cols += [f"val_{m}_k{k}" for m in self.env.metric_names for k in (0, kv)]
        return [
            "iteration",
            "phase",
            "env_steps",
            "return_pre",
            "return_post",
            *metric_cols,
            "loss",
            "surrogate",
            "entropy",
            "approx_kl",
            "clip_fraction",
            "kl_pre",
            "adapt_kl",
            "grad_norm",
            "value_loss",
            "inner_lr",
            "epochs",
            *dict.fromkeys(val_cols),
            *WALL_COLUMNS,
        ]

    def _start_run_dir(self) -> None:
        metrics = self.out / "metrics.csv"
        # a metrics.csv holding only its header, without a checkpoint, is a start killed during
        # its first iteration: nothing was trained or recorded, so starting again loses nothing
        started = metrics.exists() and len(metrics.read_text().splitlines()) > 1
        if (self.out / "checkpoint.pt").exists() or started:
            raise FileExistsError(f"{self.out} already holds a run; use --resume or another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.out / "config.yaml")
        with open(self.out / "metrics.csv", "w", newline="") as f:
            csv.writer(f).writerow(self.columns)

    def _append_metrics(self, row: Mapping[str, Any]) -> None:
        with open(self.out / "metrics.csv", "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])

    def _tensorboard(self) -> Any:
        """One event writer per trainer, however many ``train`` calls (closed by :meth:`close`)."""
        if not self.cfg.tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = self.iteration if self.resumed else None
            self._writer = SummaryWriter(str(self.out / "tb"), purge_step=purge)
        return self._writer

    def _state(self) -> dict[str, Any]:
        pol = self.policy()
        return {
            "policy_meta": pol.meta(),
            "params": pol.params,
            "inner_lrs": pol.inner_lrs,
            "value_params": pol.value_params,
            "optimizer": self.opt.state_dict(),
            "value_optimizer": None if self.value_opt is None else self.value_opt.state_dict(),
            "rng": self.rng.bit_generator.state,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "best_val": self.best_val,
            "wall_time": self.wall_time,
            "config": self.cfg.to_dict(),
        }

    def _resume(self) -> None:
        path = self.out / "checkpoint.pt"
        state = load_checkpoint(path, resume=True)
        saved = make_config(state["config"])
        diff = sorted(
            k for k in saved.to_dict() if k != "n_iterations" and saved.to_dict()[k] != self.cfg.to_dict()[k]
        )
        if diff:
            raise ValueError(f"{path}: cannot resume with a different config (changed keys: {diff})")
        if PolicySpec.from_dict(state["policy_meta"]["policy"]) != self.spec:
            raise ValueError(f"{path}: its policy architecture differs from the one its config describes")
        try:  # load_checkpoint checked the structure; this checks it fits this run's tensors
            with torch.no_grad():
                for k, v in self.theta.items():
                    v.copy_(state["params"][k])
                if self.lrs is not None:
                    for k, v in self.lrs.items():
                        v.copy_(state["inner_lrs"][k])
                if self.value is not None:
                    for k, v in self.value.items():
                        v.copy_(state["value_params"][k])
            self.opt.load_state_dict(state["optimizer"])
            if self.value_opt is not None:
                self.value_opt.load_state_dict(state["value_optimizer"])
            self.rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"{path}: its training state does not fit this run ({one_line_error(e)})"
            ) from None
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.best_val = float(state["best_val"])
        self.wall_time = float(state["wall_time"])
        self._truncate_metrics()

    def _truncate_metrics(self) -> None:
        """Drop metrics rows written after the checkpoint (a kill between row and checkpoint)."""
        path = self.out / "metrics.csv"
        rows = list(csv.reader(open(path, newline=""))) if path.exists() else []
        if not rows or rows[0] != self.columns:
            raise ValueError(f"{path} is missing or has other columns; cannot resume")
        keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) < self.iteration]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(keep)


MAMLPPO = Trainer


def policy_spec(cfg: TrainConfig, env: EnvSpec) -> PolicySpec:
    """The policy architecture a config asks for, on ``env``."""
    nvec = env.action_nvec if cfg.head == "factorised" else (env.n_actions,)
    if cfg.architecture == "mlp":
        return PolicySpec(env.obs_dim, nvec, tuple(cfg.hidden_sizes), cfg.activation)
    layout = env.item_layout
    if layout is None:
        raise ValueError(
            f"architecture 'itemwise' needs an env whose action picks one of K items and whose "
            f"observation has per-item blocks; {env.env_id} has none: use architecture 'mlp'"
        )
    return PolicySpec(
        env.obs_dim,
        (env.n_actions,),
        tuple(cfg.hidden_sizes),
        cfg.activation,
        *layout,
        item_bias=cfg.item_bias,
    )


def make_sampler(cfg: TrainConfig, env: EnvSpec, spec: PolicySpec) -> Sampler:
    """The sampler the config asks for: local, or split across Ray actors."""
    if cfg.sampler == "ray":
        from meta_rl.ray_sampler import RaySampler

        return RaySampler(  # type: ignore[return-value] - same interface as Sampler
            env, spec, num_workers=cfg.num_workers, address=cfg.ray_address, cpus_per_worker=cfg.num_threads
        )
    return Sampler(env, spec)


def _select(d: StepData, idx: Tensor, dim: int) -> StepData:
    return StepData(*(None if x is None else x.index_select(dim, idx) for x in d))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


__all__ = ["MAMLPPO", "WALL_COLUMNS", "Trainer", "TrainingDiverged", "make_sampler", "policy_spec"]
