"""MSaGAN in JAX. The notebook entry point:

    import msagan_jax
    editor = msagan_jax.load_editor("runs/quickstart")
    out = editor.edit(images, value=1)  # out.images, out.masks, out.attribute_images

Submodules (models, losses, train, classifier, editor, evaluate, sweep, ...) import on demand,
so `import msagan_jax.models` does not pull in the data pipeline.
"""

from __future__ import annotations

from typing import Any


def load_editor(workdir: Any, step: int | None = None, judge: Any = None) -> Any:
    """Restores the editor trained in `workdir`: see msagan_jax.editor.load_editor."""
    from msagan_jax import editor
    return editor.load_editor(workdir, step=step, judge=judge)
