"""Data parallelism: one mesh axis over every device of every process, jit over NamedShardings.

Parameters and optimizer states are replicated; a batch is split along its example axis. The
train step is an ordinary `jax.jit` of the one-device math: XLA's SPMD partitioner inserts the
all-reduce of the gradients (what `pmap` + `lax.pmean` did by hand). Instance norm keeps no
batch statistics, so nothing else crosses devices, and a step on 4 devices computes the same
numbers as on 1 (up to the order of the gradient sums).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def create_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named "data" over `devices` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of parameters, optimizer states and scalars: a full copy on every device."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, example_axis: int = 0) -> NamedSharding:
    """Splits an array along `example_axis` over the mesh."""
    return NamedSharding(mesh, P(*([None] * example_axis), DATA_AXIS))


def global_batch(local: Any, mesh: Mesh, example_axis: int = 0) -> Any:
    """This process's numpy batch -> global jax arrays split over the mesh.

    Each process passes its own shard (what its data loader read); the global batch is their
    concatenation along `example_axis`, in process order.
    """
    sharding = batch_sharding(mesh, example_axis)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)


def replicate_host_data(local: Any, mesh: Mesh) -> Any:
    """A numpy tree that every process holds identically -> replicated global arrays."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)


def abstract_replicated(init_fn: Callable[[], Any], mesh: Mesh) -> Any:
    """Shapes and dtypes of what `init_fn` returns, replicated on `mesh`, without computing it
    (what a checkpoint is restored into)."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        jax.eval_shape(init_fn))


def any_process(flag: bool) -> bool:
    """True when `flag` is set in any process (every process must stop at the same step)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def process_sum(value: float) -> float:
    """`value` summed over all processes (e.g. counts of each process's own examples)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils
    return float(np.sum(multihost_utils.process_allgather(np.array(value))))
