#!/usr/bin/env python
"""Why the trainer's tanh cannot be made cheaper without changing results.

tanh is the policy network's activation and ~10-15 % of a MAML-PPO iteration
(``trainer_throughput.py``). This measures, on this machine and torch build:

* ``cost_ns_per_element``: ``torch.tanh``, ``torch.sigmoid`` and ``2 sigmoid(2x) - 1`` on
  a 262 144-element float32 tensor, one thread, at every CPU capability level ATen can be
  forced to (``ATEN_CPU_CAPABILITY``; each level in a fresh process);
* ``bit_differences``: whether a faster implementation could return torch's bits — the
  number of float32 inputs (every 16th bit pattern, 268 M values, NaNs excluded) where
  ``torch.tanh`` differs from NumPy's ``tanh`` and from the correctly rounded value
  (float64 tanh rounded to float32), and of 20 000 normal draws where it differs from
  glibc's ``tanhf``;
* ``torch_compile_double_backward``: whether ``torch.compile`` (which would fuse the
  element-wise kernels) accepts the second-order backward MAML needs.

    python benchmarks/tanh_cost.py [--out benchmarks/results/tanh_cost.json]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_report  # noqa: E402

LEVELS = ("default", "avx2", "avx512")


def cost() -> dict[str, float]:
    """ns per element of each function (best of 5 rounds of 50 calls), this process."""
    import torch

    torch.set_num_threads(1)
    x = torch.randn(1 << 18)
    fns = {
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "2*sigmoid(2x)-1": lambda a: torch.sigmoid(2 * a) * 2 - 1,
    }
    out = {}
    for name, f in fns.items():
        f(x)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(50):
                f(x)
            best = min(best, (time.perf_counter() - t0) / 50)
        out[name] = best / x.numel() * 1e9
    out["capability"] = torch.backends.cpu.get_cpu_capability()
    return out


def bit_differences() -> dict[str, int]:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    vs_numpy = vs_rounded = total = 0
    for start in range(0, 1 << 32, 1 << 28):
        x = (np.arange(start, start + (1 << 28), 16, dtype=np.uint64).astype(np.uint32)).view(np.float32)
        x = x[~np.isnan(x)]
        t = torch.tanh(torch.from_numpy(x)).numpy().view(np.uint32)
        vs_numpy += int((np.tanh(x).view(np.uint32) != t).sum())
        vs_rounded += int((np.tanh(x.astype(np.float64)).astype(np.float32).view(np.uint32) != t).sum())
        total += x.size
    out = {"inputs": total, "differ_from_numpy_tanh": vs_numpy, "differ_from_correctly_rounded": vs_rounded}
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.tanhf.restype, libm.tanhf.argtypes = ctypes.c_float, [ctypes.c_float]
    draws = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    glibc = np.array([libm.tanhf(float(v)) for v in draws], dtype=np.float32)
    out["glibc_inputs"] = draws.size
    out["differ_from_glibc_tanhf"] = int(
        (glibc.view(np.uint32) != torch.tanh(torch.from_numpy(draws)).numpy().view(np.uint32)).sum()
    )
    return out


def compile_double_backward() -> str:
    import torch

    def f(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x @ w1) @ w2).pow(2).mean()

    x = torch.randn(64, 8)
    w1, w2 = torch.randn(8, 16, requires_grad=True), torch.randn(16, 4, requires_grad=True)
    try:
        (g,) = torch.autograd.grad(torch.compile(f)(x, w1, w2), w1, create_graph=True)
        g.sum().backward()
    except Exception as e:  # the answer is the message
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"
    return "ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/tanh_cost.json"))
    parser.add_argument("--_cost", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._cost:
        print(json.dumps(cost()))
        return 0
    costs = {}
    for level in LEVELS:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": level}
        run = subprocess.run(
            [sys.executable, __file__, "--_cost"], env=env, capture_output=True, text=True, check=True
        )
        costs[level] = json.loads(run.stdout.strip().splitlines()[-1])
    import torch

    result = {
        "command": "python benchmarks/tanh_cost.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "cost_ns_per_element": costs,
        "bit_differences": bit_differences(),
        "torch_compile_double_backward": compile_double_backward(),
        "machine": machine(),
    }
    write_report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
