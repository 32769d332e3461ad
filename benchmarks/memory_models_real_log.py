"""Memory models of SpacedRepetition-v0 on a real learner's Anki reviews (time-series split).

Fits every memory model on the reviews before the cut (80 % of the log by time) and
scores the later ones, against a constant baseline and the ``fsrs`` package's default
FSRS-6 (``envs/calibration/revlog_benchmark.py`` says exactly how). Prints a Markdown
table and JSON; regenerate the committed result with::

    python benchmarks/memory_models_real_log.py --optimize-fsrs \
        --out benchmarks/results/memory_models_real_log.json

The log is ``../shared/data/anki_revlog/review_log.csv`` (MIT, see the LICENSE beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs.calibration import revlog_benchmark  # noqa: E402

DEFAULT_LOG = ROOT.parent / "shared" / "data" / "anki_revlog" / "review_log.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", default=str(DEFAULT_LOG), help="Anki/fsrs review log of one learner")
    ap.add_argument("--train-fraction", type=float, default=0.8)
    ap.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations per model fit")
    ap.add_argument(
        "--optimize-fsrs", action="store_true", help="also fit the fsrs package's 21 weights (minutes)"
    )
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    if not Path(args.log).is_file():
        raise SystemExit(f"{args.log}: no such file (the real review log lives in ../shared/data/)")
    t0 = time.perf_counter()
    result = revlog_benchmark.run(
        args.log, args.train_fraction, max_iter=args.max_iter, optimize_fsrs=args.optimize_fsrs
    )
    result["seconds"] = time.perf_counter() - t0
    result["command"] = "python benchmarks/memory_models_real_log.py " + " ".join(sys.argv[1:])
    result["log"] = Path(args.log).name
    print(revlog_benchmark.table(result))
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
