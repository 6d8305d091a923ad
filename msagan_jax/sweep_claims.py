"""The sweep report's verdicts on the paper's claims, and its learning-curve figure.

Each claim is judged from the finished runs' test metrics (the paper's attribute-editing
accuracy, plus the gap to the true counterpart closed where the split stores one), with the
spread over the other factor and the seeds, so a reader sees how far a difference stands
above the noise:

    mask loss     a mask loss prevents collapse and raises accuracy (paper Fig. 6, Table 1)
    sde best      SDE is the best mask loss (Fig. 6: SDE 86% against MAE 80%, MSE 79%)
    e1d1 fastest  E1D1 trains fastest (Fig. 8)
    e1d1 accurate E1D1 is at least as accurate as the other structures (Fig. 7)
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import numpy as np

from msagan_jax import evaluate

ACCURACY, GAP = "attribute_editing_accuracy", "gap_closed"


def mean_std(values: list) -> tuple[float, float]:
    """Mean and standard deviation of the values that are not None or NaN (NaN, NaN if none)."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return (float(np.mean(values)), float(np.std(values))) if values else (math.nan, math.nan)


def fmt(mean: float, std: float, percent: bool) -> str:
    """"81.2% ± 3.4" (percent) or "0.9512 ± 0.0030"; "n/a" for NaN."""
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.1f}% ± {100 * std:.1f}" if percent else f"{mean:.4f} ± {std:.4f}"


def _stats(runs: list[dict], name: str) -> tuple[float, float]:
    return mean_std([r.get(name) for r in runs])


def _pct(stat: tuple[float, float]) -> str:
    return fmt(*stat, percent=True)


def _rank(results: list[dict], key: str, groups: Sequence[str], name: str,
          best: str, higher: bool = True) -> tuple[str, str]:
    """(verdict, evidence) for "`best` is the best group by `name`": holds when it leads,
    within the spread when another leads by less than the larger std, else does not hold."""
    stats = {g: _stats([r for r in results if r[key] == g], name) for g in groups}
    stats = {g: s for g, s in stats.items() if not math.isnan(s[0])}
    if best not in stats or len(stats) < 2:
        return "not measured", "no runs"
    sign = 1 if higher else -1
    runner = max((g for g in stats if g != best), key=lambda g: sign * stats[g][0])
    margin = sign * (stats[best][0] - stats[runner][0])  # >= 0: best leads or ties
    spread = max(stats[best][1], stats[runner][1])
    if margin >= 0:
        verdict = "holds" if margin > spread else "holds within the spread"
    else:
        verdict = "within the spread" if -margin <= spread else "does not hold"
    fmt = _pct if name != "seconds_per_epoch" else (lambda s: f"{s[0]:.1f} ± {s[1]:.1f} s")
    evidence = ", ".join(f"{g.upper() if key == 'structure' else g} {fmt(stats[g])}"
                         for g in stats)
    return verdict, evidence


def _collapse_claim(results: list[dict], losses: Sequence[str]) -> tuple[str, str]:
    without = [r for r in results if r["mask_loss"] == "none"]
    with_loss = [r for r in results if r["mask_loss"] != "none"]
    if not without or not with_loss:
        return "not measured", "needs runs with and without a mask loss"
    c0, c1 = sum(bool(r["collapsed"]) for r in without), sum(bool(r["collapsed"])
                                                            for r in with_loss)
    acc = {m: _stats([r for r in results if r["mask_loss"] == m], ACCURACY) for m in losses}
    raises = all(acc[m][0] > acc["none"][0] for m in losses if m != "none")
    if c1 == 0 and raises:
        verdict = "holds" if c0 else "holds for accuracy (no run collapsed without one either)"
    elif c1 <= c0 and raises:
        verdict = "partly (fewer collapses, higher accuracy)"
    else:
        verdict = "does not hold"
    evidence = (f"collapsed: {c0} of {len(without)} without, {c1} of {len(with_loss)} with a "
                f"mask loss; accuracy " + ", ".join(f"{m} {_pct(acc[m])}" for m in losses))
    return verdict, evidence


def verdict_lines(results: list[dict], losses: Sequence[str],
                  structures: Sequence[str]) -> list[str]:
    """The report's "Claims" section: one line per claim, verdict then the numbers."""
    claims = [("A mask loss prevents collapse and raises accuracy",
               _collapse_claim(results, losses))]
    if "sde" in losses:
        claims.append(("SDE is the best mask loss (accuracy)",
                       _rank(results, "mask_loss", losses, ACCURACY, "sde")))
        claims.append(("SDE is the best mask loss (gap to the truth closed)",
                       _rank(results, "mask_loss", losses, GAP, "sde")))
    if "e1d1" in structures:
        claims.append(("E1D1 is the fastest structure (s per epoch)",
                       _rank(results, "structure", structures, "seconds_per_epoch", "e1d1",
                             higher=False)))
        claims.append(("E1D1 is at least as accurate as the others (accuracy)",
                       _rank(results, "structure", structures, ACCURACY, "e1d1")))
        claims.append(("E1D1 is at least as accurate as the others (gap to the truth closed)",
                       _rank(results, "structure", structures, GAP, "e1d1")))
    lines = ["## The paper's claims", "",
             "Mean ± std over the other factor and the seeds; \"within the spread\": the "
             "difference to the nearest rival is under the larger standard deviation.", ""]
    lines += [f"- **{claim}: {verdict}.** {evidence}." for claim, (verdict, evidence) in claims]
    return lines


def read_curve(run_dir: pathlib.Path) -> dict[int, dict[str, float]]:
    """A run's learning curve (evaluate.read_curve) as {step: {metric: value}}; empty when it
    has none."""
    path = run_dir / evaluate.CURVE_FILE
    if not path.exists():
        return {}
    return {int(row.pop("step")): row for row in evaluate.read_curve(path)}


def curve_figure(path: pathlib.Path, curves: dict[tuple[str, str, int], dict],
                 structures: Sequence[str], losses: Sequence[str],
                 metrics: Sequence[str] = (ACCURACY, GAP)) -> pathlib.Path | None:
    """Validation metric vs iteration: a panel per (metric, structure), a line per mask loss
    (the mean over seeds) in a band from the lowest to the highest seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not any(curves.values()):
        return None
    fig, axes = plt.subplots(len(metrics), len(structures), squeeze=False,
                             figsize=(3.6 * len(structures), 3.0 * len(metrics)), sharex=True)
    for row, metric in enumerate(metrics):
        for col, structure in enumerate(structures):
            ax = axes[row][col]
            for i, loss in enumerate(losses):
                runs = [c for (s, m, _), c in curves.items() if s == structure and m == loss]
                steps = sorted({t for c in runs for t in c if metric in c[t]})
                if not steps:
                    continue
                values = np.array([[c.get(t, {}).get(metric, np.nan) for t in steps]
                                   for c in runs])
                # One colour per loss in every panel: a panel missing a loss must not shift
                # the others' colours away from the legend's.
                ax.plot(steps, np.nanmean(values, 0), label=loss, marker=".", color=f"C{i}")
                ax.fill_between(steps, np.nanmin(values, 0), np.nanmax(values, 0),
                                color=f"C{i}", alpha=0.2)
            label = "accuracy" if metric == ACCURACY else "gap closed"
            ax.set_title(f"{structure.upper()}: {label}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == len(metrics) - 1:
                ax.set_xlabel("iteration")
    handles = [Line2D([], [], color=f"C{i}", marker=".", label=loss)
               for i, loss in enumerate(losses)]
    axes[0][0].legend(handles=handles, title="mask loss", fontsize=8)
    fig.suptitle("Validation during training (line: mean over seeds; band: lowest to highest)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
