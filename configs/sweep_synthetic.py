"""The paper's 16-model sweep, sized for a CPU: the quick-start recipe, fewer iterations.

    python main.py --mode=sweep --config=configs/sweep_synthetic.py --workdir=runs/sweep --seeds=2

Every (structure, mask loss, seed) trains in runs/sweep/runs/<structure>_<loss>_s<seed>, one
judge in runs/sweep/judge scores them all, and runs/sweep/report.md compares them like the
paper's Figs 6-8. On the real data use configs/default.py (the paper's recipe) on a GPU.
"""

from configs import quickstart


def get_config():
    """configs/quickstart.py with a smaller budget per model: batch 8, 200 iterations (the sweep
    sets structure, mask_loss and seed)."""
    config = quickstart.get_config()
    config.batch_size = 8
    config.num_train_steps = 200
    config.sample_every = 100
    config.checkpoint_every = 100
    config.eval_every = 100
    return config
