"""Data parallelism: one mesh axis over every device of every process, jit over NamedShardings.

Parameters and optimizer states are replicated; a batch is split along its example axis. The
train step is an ordinary `jax.jit` of the one-device math: XLA's SPMD partitioner inserts the
all-reduce of the gradients (what `pmap` + `lax.pmean` did by hand). Instance norm keeps no
batch statistics, so nothing else crosses devices, and a step on 4 devices computes the same
numbers as on 1 (up to the order of the gradient sums). Where one pass runs several batches
at once (G's K target values, D's real and edited images), they are `interleave`d, example by
example, so that each device's examples stay on it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
# The most CPU devices `use_cpu_cores` makes: measured faster on 2 cores (see the README);
# beyond this it is unmeasured, and every batch must divide by the count.
MAX_CPU_DEVICES = 8


def cpu_device_count(requested: int, batch_sizes: Sequence[int],
                     cores: int | None = None) -> int:
    """How many XLA devices to split the CPU into: `requested`, or for 0 one per core (at most
    MAX_CPU_DEVICES), lowered to the largest count that divides every batch."""
    if requested > 0:
        return requested  # validation names a batch it does not divide
    count = min(cores or os.cpu_count() or 1, MAX_CPU_DEVICES)
    while count > 1 and any(b % count for b in batch_sizes):
        count -= 1
    return max(1, count)


def use_cpu_cores(requested: int, batch_sizes: Sequence[int]) -> int | None:
    """Splits the CPU into `cpu_device_count(...)` XLA devices, so that a CPU-only run uses
    every core the way a multi-GPU run uses every GPU (the batch split over them). Must run
    before JAX starts its backends; returns the count set, or None where it changed nothing:
    backends already started, or the user chose (XLA_FLAGS' host device count)."""
    from jax._src import xla_bridge  # noqa: PLC0415 (no public "has the backend started")

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if xla_bridge.backends_are_initialized():
        return None
    count = cpu_device_count(requested, batch_sizes)
    # Only the CPU backend reads it: on a GPU machine the GPUs stay the devices.
    jax.config.update("jax_num_cpu_devices", count)
    return count


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


def interleave(arrays: Sequence[jax.Array]) -> jax.Array:
    """K arrays (B, ...) -> one (B * K, ...) whose rows go example by example: a0, b0, a1, b1...

    Joined in K blocks of B instead, the rows a device holds of the result would come from
    other devices, and XLA moves them there (all-to-alls: 8% of a CPU iteration's work, README's
    Measured); interleaved, a split along the example axis keeps each example where it was."""
    stacked = jnp.stack(arrays, axis=1)
    return stacked.reshape((-1,) + stacked.shape[2:])


def deinterleave(x: jax.Array, k: int) -> jax.Array:
    """interleave's inverse: (B * K, ...) -> (K, B, ...)."""
    return jnp.swapaxes(x.reshape((-1, k) + x.shape[1:]), 0, 1)


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
