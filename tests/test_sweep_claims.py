"""The sweep report's verdicts on the paper's claims, and its learning-curve figure."""

from __future__ import annotations

import itertools

from msagan_jax import sweep_claims

LOSSES, STRUCTURES = ["none", "mae", "mse", "sde"], ["e2d2", "e2d1", "e1d2", "e1d1"]


def _runs(accuracy, gap=None, seconds=None, collapsed=()):
    """Two seeds of every model; accuracy(structure, loss) -> value (seed 1 adds 0.01)."""
    return [{"structure": s, "mask_loss": m, "seed": seed,
             "attribute_editing_accuracy": accuracy(s, m) + 0.01 * seed,
             "gap_closed": (gap or accuracy)(s, m) + 0.01 * seed,
             "seconds_per_epoch": (seconds or (lambda s: 50.0))(s) + seed,
             "collapsed": (s, m, seed) in collapsed}
            for s, m, seed in itertools.product(STRUCTURES, LOSSES, (0, 1))]


def _claims(results):
    lines = sweep_claims.verdict_lines(results, LOSSES, STRUCTURES)
    return {line.split("**")[1].rsplit(":", 1)[0]: line.split("**")[1].rsplit(": ", 1)[1]
            for line in lines if line.startswith("- **")}


def test_sde_is_judged_best_only_when_it_leads_by_more_than_the_spread():
    lead = _claims(_runs(lambda s, m: 0.9 if m == "sde" else 0.6))
    assert lead["SDE is the best mask loss (accuracy)"] == "holds."
    behind = _claims(_runs(lambda s, m: 0.9 if m == "mse" else 0.6))
    assert behind["SDE is the best mask loss (accuracy)"] == "does not hold."
    # MSE ahead by 0.02 while the structures spread the scores by 0.3: within the spread.
    spread = {"e2d2": 0.0, "e2d1": 0.3, "e1d2": 0.0, "e1d1": 0.3}
    close = _claims(_runs(lambda s, m: 0.5 + spread[s] + (0.02 if m == "mse" else 0.0)))
    assert close["SDE is the best mask loss (accuracy)"] == "within the spread."


def test_the_mask_loss_claim_holds_when_only_runs_without_one_collapse():
    collapsed = {("e2d2", "none", 0), ("e2d2", "none", 1)}
    claims = _claims(_runs(lambda s, m: 0.3 if m == "none" else 0.8, collapsed=collapsed))
    assert claims["A mask loss prevents collapse and raises accuracy"] == "holds."
    claims = _claims(_runs(lambda s, m: 0.3 if m == "none" else 0.8,
                           collapsed={("e1d1", "sde", 0)}))
    assert claims["A mask loss prevents collapse and raises accuracy"] == "does not hold."


def test_e1d1_is_fastest_when_its_seconds_per_epoch_are_the_lowest():
    seconds = {"e2d2": 63.0, "e2d1": 56.0, "e1d2": 53.0, "e1d1": 47.0}
    claims = _claims(_runs(lambda s, m: 0.8, seconds=seconds.get))
    assert claims["E1D1 is the fastest structure (s per epoch)"] == "holds."
    seconds["e1d1"] = 70.0
    claims = _claims(_runs(lambda s, m: 0.8, seconds=seconds.get))
    assert claims["E1D1 is the fastest structure (s per epoch)"] == "does not hold."


def test_gap_closed_is_judged_apart_from_accuracy():
    claims = _claims(_runs(lambda s, m: 1.0 if m != "none" else 0.5,
                           gap=lambda s, m: 0.7 if s == "e1d1" else 0.4))
    assert claims["E1D1 is at least as accurate as the others (gap to the truth closed)"] == \
        "holds."
    assert claims["E1D1 is at least as accurate as the others (accuracy)"] == \
        "holds within the spread."  # a tie at 100% is no lead


def test_the_learning_curve_figure_draws_every_run_csv(tmp_path):
    curves = {}
    for structure, loss, seed in itertools.product(["e1d1"], ["none", "sde"], [0, 1]):
        run = tmp_path / f"{structure}_{loss}_s{seed}"
        run.mkdir()
        (run / "eval_curve.csv").write_text(
            "step,attribute_editing_accuracy,gap_closed\n"
            f"100,{0.2 + seed / 10},0.1\n200,{0.5 + seed / 10},0.3\n")
        curves[structure, loss, seed] = sweep_claims.read_curve(run)
    assert curves["e1d1", "sde", 1][200] == {"attribute_editing_accuracy": 0.6,
                                             "gap_closed": 0.3}
    path = sweep_claims.curve_figure(tmp_path / "curves.png", curves, ["e1d1"], ["none", "sde"])
    assert path.stat().st_size > 5000
    assert sweep_claims.curve_figure(tmp_path / "none.png", {("e1d1", "sde", 0): {}},
                                     ["e1d1"], ["sde"]) is None


def test_each_mask_loss_keeps_its_legend_colour_in_a_panel_that_lacks_another_loss(
        tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    curve = {200: {"attribute_editing_accuracy": 0.5, "gap_closed": 0.3}}
    # E2D2 has every loss; E1D1 lacks "mae", so its "sde" line is its second, not its third.
    curves = {("e2d2", loss, 0): curve for loss in ("none", "mae", "sde")}
    curves |= {("e1d1", loss, 0): curve for loss in ("none", "sde")}
    sweep_claims.curve_figure(tmp_path / "c.png", curves, ["e2d2", "e1d1"],
                              ["none", "mae", "sde"])
    (fig,) = saved
    legend = {t.get_text(): h.get_color() for t, h in zip(
        fig.axes[0].get_legend().get_texts(), fig.axes[0].get_legend().legend_handles)}
    for ax in fig.axes:
        for line in ax.get_lines():
            assert line.get_color() == legend[line.get_label()], ax.get_title()
    assert {line.get_label() for line in fig.axes[1].get_lines()} == {"none", "sde"}
