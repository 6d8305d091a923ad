"""Training: the pure iteration, every paper config, the loop's outputs, resume and stops."""

from __future__ import annotations

import importlib
import math
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, tiny_config
from msagan_jax import checkpoint, config_lib, errors, input_pipeline, loop, losses, models
from msagan_jax import parallel, train

PAPER_CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("e?d?_*.py"))


def _leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def iteration_batch(synthetic_data_dir):
    """One iteration's worth of real synthetic faces: (d_steps + 1, 2, 64, 64, ...)."""
    config = tiny_config(synthetic_data_dir)
    input_pipeline.prepare(config)
    task = input_pipeline.task_from_config(config)
    loader = input_pipeline.create_train_loader(task, batch_size=4 * config.batch_size, seed=0)
    return train._stack_iteration_batch(next(iter(loader)), 4)


def test_there_are_sixteen_paper_configs_each_changing_structure_and_mask_loss_only():
    from configs import default

    from configs import paper

    assert len(PAPER_CONFIGS) == 16
    base = config_lib.flatten(default.get_config())
    for name in PAPER_CONFIGS:
        config = importlib.import_module(f"configs.{name}").get_config()
        structure, loss = name.split("_")
        loss = "none" if loss == "nomask" else loss
        assert (config.structure, config.mask_loss) == (structure, loss)
        changed = {k for k, v in config_lib.flatten(config).items() if base[k] != v}
        assert changed <= {"structure", "mask_loss"}, (name, changed)
        # configs/paper.py:<structure>,<loss> (big_vision style) is the same config.
        assert paper.get_config(f"{structure},{loss}").to_dict() == config.to_dict()
        assert config.random_flip is False  # neither the paper nor SaGAN's code flips


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_every_paper_config_trains_with_finite_losses(name, synthetic_data_dir, iteration_batch):
    config = importlib.import_module(f"configs.{name}").get_config()
    tiny = tiny_config(synthetic_data_dir, structure=config.structure,
                       mask_loss=config.mask_loss)
    mesh = parallel.create_mesh()
    state = train.create_state(tiny, 10, mesh)
    before = jax.device_get(state.g_params)
    step = train.compile_train_iteration(tiny, 10, mesh)
    batch = parallel.global_batch(iteration_batch, mesh, example_axis=1)
    for _ in range(2):
        state, metrics = step(state, batch)
    metrics = jax.device_get(metrics)
    assert all(math.isfinite(float(v)) for v in metrics.values()), metrics
    assert int(state.step) == 2
    assert not _leaves_equal(before, jax.device_get(state.g_params))
    assert ("g/mask_id" in metrics) == (config.mask_loss != "none")
    if config.mask_loss != "none":
        assert float(metrics["g/mask"]) > 0


def test_the_same_seed_gives_the_same_initial_state_and_another_seed_another(synthetic_data_dir):
    config = tiny_config(synthetic_data_dir)
    a, b = train.init_state(config, 10), train.init_state(config, 10)
    assert _leaves_equal(a, b)
    config.seed = 1
    assert not _leaves_equal(a.g_params, train.init_state(config, 10).g_params)


def test_the_learning_rate_decays_linearly_to_zero_and_d_follows_in_iterations():
    config = tiny_config(".", lr_decay_start=50)
    schedule = train.learning_rate_schedule(config, 100)
    assert float(schedule(0)) == float(schedule(50)) == pytest.approx(2e-4)
    assert float(schedule(75)) == pytest.approx(1e-4)
    assert float(schedule(100)) == pytest.approx(0.0)
    config.lr_decay_start = -1
    assert float(train.learning_rate_schedule(config, 100)(100)) == pytest.approx(2e-4)


def test_d_takes_d_steps_updates_per_iteration_at_that_iterations_learning_rate():
    # With a constant gradient of 1 every Adam update is -lr (m_hat = v_hat = 1), so the
    # update sizes read the schedule back: D's c-th update is at iteration c // d_steps.
    config = tiny_config(".", lr_decay_start=0, d_steps=3)
    schedule = train.learning_rate_schedule(config, 10)
    _, d_tx = train.create_optimizers(config, 10)
    params, opt_state, sizes = jnp.zeros(()), d_tx.init(jnp.zeros(())), []
    for _ in range(9):
        updates, opt_state = d_tx.update(jnp.ones(()), opt_state, params)
        sizes.append(-float(updates))
    np.testing.assert_allclose(sizes, [float(schedule(c // 3)) for c in range(9)], rtol=1e-5)
    assert sizes[2] > sizes[3]  # a new iteration, a lower rate: not the G schedule's count


def _first_update_sizes(config) -> tuple[float, float]:
    """|G's| and |D's| first Adam update for a gradient of 1 (each is that optimiser's rate)."""
    sizes = []
    for tx in train.create_optimizers(config, 10):
        updates, _ = tx.update(jnp.ones(()), tx.init(jnp.zeros(())), jnp.zeros(()))
        sizes.append(-float(updates))
    return sizes[0], sizes[1]


def test_d_learning_rate_sets_d_rate_alone_and_zero_means_g_rate():
    config = tiny_config(".", learning_rate=1e-3, d_learning_rate=4e-3)
    np.testing.assert_allclose(_first_update_sizes(config), [1e-3, 4e-3], rtol=1e-5)
    config.d_learning_rate = 0.0
    np.testing.assert_allclose(_first_update_sizes(config), [1e-3, 1e-3], rtol=1e-5)


def _iteration(config, state, batch):
    mesh = parallel.create_mesh()
    step = train.compile_train_iteration(config, 10, mesh)
    return jax.device_get(step(state, parallel.global_batch(batch, mesh, example_axis=1)))


def test_each_d_step_reads_its_own_batch_and_d_never_reads_the_g_steps(synthetic_data_dir,
                                                                       iteration_batch):
    config = tiny_config(synthetic_data_dir)
    mesh = parallel.create_mesh()
    base, _ = _iteration(config, train.create_state(config, 10, mesh), iteration_batch)
    second_d_batch = {k: v.copy() for k, v in iteration_batch.items()}
    second_d_batch["image"][1] = iteration_batch["image"][0]
    changed, _ = _iteration(config, train.create_state(config, 10, mesh), second_d_batch)
    assert not _leaves_equal(base.d_params, changed.d_params)
    g_batch = {k: v.copy() for k, v in iteration_batch.items()}
    g_batch["image"][3] = iteration_batch["image"][0]
    g_changed, _ = _iteration(config, train.create_state(config, 10, mesh), g_batch)
    assert _leaves_equal(base.d_params, g_changed.d_params)
    assert not _leaves_equal(base.g_params, g_changed.g_params)


def test_ema_keeps_a_moving_average_of_g_without_changing_what_g_learns(synthetic_data_dir,
                                                                        iteration_batch):
    mesh = parallel.create_mesh()
    plain_config = tiny_config(synthetic_data_dir)
    plain = train.create_state(plain_config, 10, mesh)
    assert type(plain) is train.TrainState  # runs without it keep their checkpoint layout
    config = tiny_config(synthetic_data_dir, ema_decay=0.9)
    start = jax.device_get(train.create_state(config, 10, mesh))
    assert isinstance(start, train.EmaTrainState) and _leaves_equal(start.g_ema, start.g_params)
    after, _ = _iteration(config, train.create_state(config, 10, mesh), iteration_batch)
    plain_after, _ = _iteration(plain_config, plain, iteration_batch)
    assert _leaves_equal(after.g_params, plain_after.g_params)
    # Step 0: the decay ramps up from min(0.9, 1/10), so the average moves 90% of the way.
    expected = jax.tree.map(lambda old, new: 0.1 * old + 0.9 * new, start.g_params,
                            after.g_params)
    for got, want in zip(jax.tree.leaves(after.g_ema), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert train.generator_params(after) is after.g_ema
    assert train.generator_params(plain_after) is plain_after.g_params


def test_the_region_critic_learns_beside_d_and_at_weight_zero_changes_nothing_else(
        synthetic_data_dir, iteration_batch):
    mesh = parallel.create_mesh()
    plain_config = tiny_config(synthetic_data_dir)
    plain, _ = _iteration(plain_config, train.create_state(plain_config, 10, mesh),
                          iteration_batch)

    def run(weight):
        config = tiny_config(synthetic_data_dir, d_region_size=32, d_region_weight=weight)
        start = jax.device_get(train.create_state(config, 10, mesh))
        return start, *_iteration(config, train.create_state(config, 10, mesh),
                                  iteration_batch)

    start, off, off_metrics = run(0.0)
    region = lambda state: state.d_params["params"].pop("region")  # noqa: E731
    assert _leaves_equal(region(start), region(off))  # no gradient reaches it at weight 0
    assert _leaves_equal(off.d_params, plain.d_params)
    assert _leaves_equal(off.g_params, plain.g_params)
    assert {"d/src_region", "g/adv_region"} <= set(off_metrics)
    start, on, _ = run(1.0)
    assert not _leaves_equal(region(start), region(on))
    assert not _leaves_equal(on.g_params, plain.g_params)


def test_the_region_critics_penalty_enters_ds_loss_under_wgan_gp(synthetic_data_dir,
                                                                 iteration_batch):
    config = tiny_config(synthetic_data_dir, d_region_size=16, adversarial_loss="wgan_gp")
    _, metrics = _iteration(config, train.create_state(config, 10, parallel.create_mesh()),
                            iteration_batch)
    assert float(metrics["d/gp_region"]) > 0 and np.isfinite(float(metrics["d/loss"]))


@pytest.mark.parametrize("adversarial_loss", ["lsgan", "wgan_gp"])
def test_a_spectrally_normalized_d_trains_with_the_same_parameters_and_another_path(
        synthetic_data_dir, iteration_batch, adversarial_loss):
    mesh = parallel.create_mesh()
    plain_config = tiny_config(synthetic_data_dir, adversarial_loss=adversarial_loss)
    config = tiny_config(synthetic_data_dir, adversarial_loss=adversarial_loss,
                         d_spectral_norm=True)
    start = jax.device_get(train.create_state(config, 10, mesh))
    assert _leaves_equal(start.d_params,
                         jax.device_get(train.create_state(plain_config, 10, mesh)).d_params)
    plain, _ = _iteration(plain_config, train.create_state(plain_config, 10, mesh),
                          iteration_batch)
    after, metrics = _iteration(config, train.create_state(config, 10, mesh), iteration_batch)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert not _leaves_equal(after.d_params, start.d_params)
    assert not _leaves_equal(after.d_params, plain.d_params)


def test_update_ema_moves_the_average_by_one_minus_the_decay_once_warmed_up():
    ema, params = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    np.testing.assert_allclose(train.update_ema(ema, params, 0.99, jnp.array(10_000))["w"],
                               0.01, rtol=1e-6)
    np.testing.assert_allclose(train.update_ema(ema, params, 0.99, jnp.array(0))["w"], 0.9,
                               rtol=1e-6)


def test_the_editor_of_a_run_with_ema_edits_with_the_average(synthetic_data_dir, tmp_path):
    from msagan_jax import editor

    config = tiny_config(synthetic_data_dir, ema_decay=0.5, num_train_steps=2, sample_every=0)
    state = jax.device_get(train.train_and_evaluate(config, tmp_path).state)
    restored = editor.load_editor(tmp_path)
    assert _leaves_equal(restored.g_params, state.g_ema)
    assert not _leaves_equal(restored.g_params, state.g_params)


def test_the_mask_loss_applies_to_the_identity_and_dual_masks_not_the_edit_mask(
        synthetic_data_dir, iteration_batch):
    config = tiny_config(synthetic_data_dir, mask_loss="mse")
    mesh = parallel.create_mesh()
    state = train.create_state(config, 10, mesh)
    g_params = jax.device_get(state.g_params)
    _, metrics = _iteration(config, state, iteration_batch)
    # The G step reads the last batch, with the parameters from before the iteration.
    image, label, guide = (iteration_batch[k][3] for k in ("image", "label", "mask"))
    generator, _ = models.create_models(config)
    edit, _, b_edit = generator.apply(g_params, image, 1.0 - label)
    _, _, b_id = generator.apply(g_params, image, label)
    _, _, b_dual = generator.apply(g_params, edit, label)
    term = lambda b: float(losses.mask_term("mse", guide, b))  # noqa: E731
    assert float(metrics["g/mask"]) == pytest.approx(100 * term(b_id) + 20 * term(b_dual),
                                                     rel=1e-4)
    assert float(metrics["g/mask"]) != pytest.approx(100 * term(b_edit) + 20 * term(b_dual),
                                                     rel=1e-4)
    assert "g/mask_edit" not in metrics


def test_the_collapse_watch_warns_once_per_streak_of_low_guide_mask_means():
    watch = train.CollapseWatch(threshold=0.05, patience=3)
    assert [watch.update(v) for v in (0.01, 0.02, 0.01, 0.0, 0.5, 0.01, 0.01, 0.01)] == [
        False, False, True, False, False, False, False, True]
    assert watch.warnings == 2


def test_a_non_finite_loss_is_reported_with_its_step_and_term():
    history = [(7, {"d/loss": 1.0, "g/loss": 2.0}), (8, {"d/loss": 1.0, "g/rec_id": math.inf})]
    with pytest.raises(errors.NonFiniteLossError, match="at step 8: g/rec_id=inf"):
        loop.check_finite(history)


def test_itstime_is_every_n_steps_and_the_last_and_never_for_zero():
    assert [s for s in range(1, 11) if loop.itstime(s, 4, 10)] == [4, 8, 10]
    assert not any(loop.itstime(s, 0, 10) for s in range(1, 11))


def test_a_run_stopped_by_sigterm_and_resumed_ends_exactly_like_an_uninterrupted_run(
        synthetic_data_dir, tmp_path, monkeypatch):
    result = train.train_and_evaluate(tiny_config(synthetic_data_dir), tmp_path / "straight")
    assert result.finished and result.step == 4
    straight = jax.device_get(result.state)
    assert int(straight.step) == 4

    # SIGTERM arrives during iteration 1's logging; checkpoints would come only at 100.
    scalars = loop.Writer.scalars

    def scalars_then_sigterm(self, step, values):
        scalars(self, step, values)
        if step == 1:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(loop.Writer, "scalars", scalars_then_sigterm)
    stopped_dir = tmp_path / "stopped"
    config = tiny_config(synthetic_data_dir, log_every=1, checkpoint_every=100)
    stopped = train.train_and_evaluate(config, stopped_dir)
    assert not stopped.finished and stopped.step == 1 and int(stopped.state.step) == 1
    assert sorted(p.name for p in (stopped_dir / "checkpoints").iterdir()) == ["1"]
    monkeypatch.setattr(loop.Writer, "scalars", scalars)

    resumed = jax.device_get(train.train_and_evaluate(config, stopped_dir).state)
    assert int(resumed.step) == 4
    assert _leaves_equal(straight, resumed)

    # What the loop leaves in a workdir.
    workdir = tmp_path / "straight"
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2", "4"]
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png"]
    assert list(workdir.glob("events.out.tfevents.*"))
    assert config_lib.restore(workdir).structure == "e1d1"


def test_a_nan_loss_stops_the_run_naming_iteration_and_term_and_keeps_the_last_checkpoint(
        synthetic_data_dir, tmp_path):
    config = tiny_config(synthetic_data_dir, num_train_steps=2, sample_every=0)
    train.train_and_evaluate(config, tmp_path)
    config.update(num_train_steps=4, gp_weight=float("nan"), log_every=1, checkpoint_every=1)
    with pytest.raises(errors.NonFiniteLossError, match="at step 3: .*d/loss=nan"):
        train.train_and_evaluate(config, tmp_path, allow_config_change=True)
    manager = checkpoint.create_manager(tmp_path)
    assert checkpoint.latest_step(manager) == 2
    state = train.abstract_state(config, 4, parallel.create_mesh())
    iterator = iter(input_pipeline.create_train_loader(
        input_pipeline.task_from_config(config), batch_size=8, seed=0))
    restored = checkpoint.restore(manager, 2, state, iterator)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(restored))


def test_a_workdir_refuses_a_config_with_other_parameter_shapes(synthetic_data_dir, tmp_path):
    train.train_and_evaluate(tiny_config(synthetic_data_dir, num_train_steps=1, sample_every=0),
                             tmp_path)
    with pytest.raises(errors.ConfigError, match="width: 4 -> 8"):
        train.train_and_evaluate(tiny_config(synthetic_data_dir, width=8, num_train_steps=2),
                                 tmp_path)
