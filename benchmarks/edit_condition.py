"""Choose the condition c that G is given at inference: the metrics of trained editors over a
split, for each c toward 1 (and toward 0) tried.

    python -m benchmarks.edit_condition --runs runs/quickstart --to_1 1,1.25,1.5,1.75,2

Training gives G the target value itself (0 or 1). A c past it pushes the edit further
(AttGAN's `test_int`); an editor that under-opens mouths may open them better at c > 1. This
prints, per run and as the mean over `--runs`, the gap to the true edited faces closed each way
(the evaluation's metric; n/a on a split without true counterparts, such as the real faces'),
the attribute-editing accuracy each way and SSIM, on `--split`
(default: validation, so that the choice is not made on the test faces). Each direction reads
only its own c: the faces edited toward 1 depend on `--to_1` alone. The chosen values go in the
run's config (`edit_condition_to_0`, `edit_condition_to_1`) or `main.py --mode=evaluate
--edit_condition=C0,C1`.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from msagan_jax import editor as editor_lib, evaluate

COLUMNS = ("gap_closed_to_1", "gap_closed_to_0", "accuracy_to_1", "accuracy_to_0", "ssim")


def scores(ed: editor_lib.Editor, to_0: float, to_1: float, split: str) -> dict[str, float]:
    """COLUMNS of `ed` over `split`, G given `to_0` and `to_1`; NaN for the gaps closed where
    the split has no true counterparts (all but the synthetic faces' validation and test)."""
    metrics = evaluate.evaluate(ed.with_condition(to_0, to_1), split=split)
    return {name: float(metrics.get(name, np.nan)) for name in COLUMNS}


def _cell(s: dict[str, float], name: str) -> str:
    if not np.isfinite(s[name]):  # no true counterparts to measure against
        return "n/a"
    return f"{s[name]:.3f}" if name == "ssim" else f"{100 * s[name]:.1f}%"


def table(runs: list[str], to_0: list[float], to_1: list[float], split: str) -> list[str]:
    """Markdown rows: one per (c toward 0, c toward 1) pair, each run's scores and their mean."""
    editors = [editor_lib.load_editor(run) for run in runs]
    heads = ["c toward 0", "c toward 1"] + [evaluate.METRICS[c].short for c in COLUMNS]
    lines = ["| run | " + " | ".join(heads) + " |", "|" + " --- |" * (len(heads) + 1)]
    print("\n".join(lines), flush=True)
    for c0, c1 in itertools.product(to_0, to_1):
        per_run = [scores(ed, c0, c1, split) for ed in editors]
        rows = list(zip(runs, per_run))
        if len(runs) > 1:
            rows.append(("mean", {k: float(np.mean([s[k] for s in per_run])) for k in COLUMNS}))
        for name, s in rows:
            cells = [f"{c0:g}", f"{c1:g}"] + [_cell(s, k) for k in COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="trained editors' workdirs, comma-separated")
    parser.add_argument("--to_1", default="1", help="c toward 1 to try, comma-separated")
    parser.add_argument("--to_0", default="0", help="c toward 0 to try, comma-separated")
    parser.add_argument("--split", default="validation")
    args = parser.parse_args(argv)
    numbers = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    print(f"{args.split} split")
    table(args.runs.split(","), numbers(args.to_0), numbers(args.to_1), args.split)


if __name__ == "__main__":
    main()
