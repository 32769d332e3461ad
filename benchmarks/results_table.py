#!/usr/bin/env python
"""The README's compact result table of one env family, from its committed ``results.json``.

For every learned method, the oracles, the best heuristic and random: the mean return
[95 % bootstrap CI over students] on test students after k = 0, 1 and 3 adaptation steps
and on ood students after k = 0 and 3, then the fraction of the random-to-oracle gap
closed on test students after 1 and 3 steps (``gap_closed`` of ``results.json``: relative
to the strongest method of kind "oracle"). Then each learned method's paired difference
with pooled PPO at k = 0 and k = 3 (test), from the per-student returns.

    python benchmarks/results_table.py benchmarks/results/skill_graph [--steps 0 1 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meta_rl.evaluation.stats import paired_difference_ci  # noqa: E402

LEARNED = ("maml_ppo", "mamlpp_ppo", "reptile_ppo", "encoder_ppo", "pooled_ppo", "sb3_ppo", "recurrent_ppo")


def _cell(m: dict, k: int) -> str:
    return f"{m['mean'][k]:.2f} [{m['ci_low'][k]:.2f}, {m['ci_high'][k]:.2f}]"


def table(folder: Path, steps: list[int]) -> str:
    test = json.loads((folder / "test" / "results.json").read_text())
    ood_file = folder / "ood" / "results.json"
    ood = json.loads(ood_file.read_text()) if ood_file.is_file() else None
    methods = test["methods"]
    k_index = {k: i for i, k in enumerate(range(test["adapt_steps"] + 1))}
    heuristics = [n for n, m in methods.items() if m["kind"] == "heuristic" and n != test["random_method"]]
    best_h = max(heuristics, key=lambda n: methods[n]["mean"][0]) if heuristics else None
    rows = [n for n, m in methods.items() if m["kind"] in ("oracle", "omniscient")]
    rows += [n for n in LEARNED if n in methods]
    rows += [n for n in (best_h, test["random_method"]) if n]
    head = [f"test k = {k}" for k in steps] + ["ood k = 0", f"ood k = {steps[-1]}"]
    head += [f"gap closed k = {k}" for k in steps if k > 0]
    out = ["| method | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for n in rows:
        m = methods[n]
        adapts = m["kind"] == "adaptive"
        cells = [_cell(m, k_index[k]) if adapts or k == 0 else "" for k in steps]
        if ood is not None and n in ood["methods"]:
            o = ood["methods"][n]
            cells += [_cell(o, 0), _cell(o, k_index[steps[-1]]) if adapts else ""]
        else:
            cells += ["", ""]
        cells += [f"{m['gap_closed'][k_index[k]]:.2f}" if adapts else "" for k in steps if k > 0]
        label = f"{n} ({m['kind']})" if m["kind"] != "adaptive" else n
        if n == best_h:
            label = f"best heuristic: {n}"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    if "pooled_ppo" in methods:
        out += [
            "",
            f"| paired difference with pooled_ppo (test) | k = 0 | k = {steps[-1]} |",
            "|---|---|---|",
        ]
        ref = np.asarray(methods["pooled_ppo"]["per_profile"])
        for n in (n for n in LEARNED if n in methods and n != "pooled_ppo"):
            per = np.asarray(methods[n]["per_profile"])
            cells = []
            for k in (0, steps[-1]):
                d = paired_difference_ci(per[:, k_index[k]], ref[:, k_index[k]])
                cells.append(f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]")
            out.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="benchmarks/results/<env> (with test/ and ood/)")
    p.add_argument("--steps", type=int, nargs="+", default=[0, 1, 3])
    a = p.parse_args(argv)
    print(table(a.folder, a.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
