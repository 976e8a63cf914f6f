"""The member axis (seeds x grid points) spread over all devices.

Every compiled program of ticketjax maps a leading *member* axis: seeds, and
the points of a vmapped hyperparameter grid. With more than one device the
member axis is sharded over a 1-D mesh of all devices (`MESH_AXIS`; with
several processes, the devices of every process), and the data are
replicated, so each device runs its share of the members and XLA's SPMD
partitioner needs no communication inside the training step. With several
processes (`ticketjax.run.hosts`) the inputs are built from the host values
every process holds, and `gather` brings the results back to every
process.

On a machine with one accelerator nothing changes. On CPU, JAX shows one
device unless asked for more:

  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m launch.main ...

gives two CPU devices that run their members on separate cores at once:
LeNet-300-100 trains 1.7x faster per member-step on 2 cores with 2 seeds
(`benchmarks/throughput.py --seeds=2`).

A member count that is not a multiple of the device count is padded with
copies of the last member, and the copies are dropped from every result
(`pad_members` / `unpad_members`). XLA compiles a vmapped computation
differently for different member counts per device, so results agree
across device counts to float rounding; with `member_group` = g > 0
(`map_member_groups`) every member runs in a compiled group of exactly g,
and results are bitwise the same for any member count and any device
count (an 8-seed IMP search on 1 and 4 CPU devices writes identical
records, `tests/sharding_test.py`; this also needs `optim.scale_by_adam`).
"""
import functools

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXIS = 'members'


@functools.lru_cache(maxsize=None)
def _mesh(devices: tuple) -> Mesh:
  return Mesh(list(devices), (MESH_AXIS,))


def mesh() -> Mesh:
  """A 1-D mesh over all devices of all processes, axis `MESH_AXIS`."""
  return _mesh(tuple(jax.devices()))


def num_devices() -> int:
  return jax.device_count()


def _place(tree, spec: PartitionSpec):
  """`tree` with every leaf placed by `spec` over the mesh.

  Leaves placed so already are returned as they are: the data set, held
  replicated from `train.to_device` on, is not copied again at every
  `train` and `evaluate` call (on several processes that would be a round
  trip through host memory).
  """
  sharding = NamedSharding(mesh(), spec)

  def one(x):
    if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(
        sharding, x.ndim):
      return x
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    # every process holds the whole value; each places its part
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding,
                                        lambda index: host[index])
  return jax.tree.map(one, tree)


def padded_count(num_members: int, group: int = 0) -> int:
  """`num_members` rounded up to a multiple of devices x `group` (if > 0)."""
  n = num_devices() * max(int(group), 1)
  return -(-num_members // n) * n


def pad_members(tree_S, num_members: int, group: int = 0):
  """Pads the leading axis to `padded_count` with copies of the last row."""
  pad = padded_count(num_members, group) - num_members
  if not pad:
    return tree_S
  return jax.tree.map(
      lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]),
      tree_S)


def unpad_members(tree_S, num_members: int, axis: int = 0):
  """Drops the padding rows that `pad_members` added (along `axis`)."""
  def cut(x):
    if x.shape[axis] == num_members:
      return x
    return jax.lax.slice_in_dim(x, 0, num_members, axis=axis)
  return jax.tree.map(cut, tree_S)


def shard_members(tree_S):
  """Places a member-stacked pytree with its leading axis over the mesh.

  The leading axis must be a multiple of the device count (`pad_members`).
  With one device this is the identity.
  """
  if num_devices() == 1:
    return tree_S
  return _place(tree_S, PartitionSpec(MESH_AXIS))


def replicate(tree):
  """Places a pytree on every device of the mesh (identity on one device)."""
  if num_devices() == 1:
    return tree
  return _place(tree, PartitionSpec())


def gather(tree):
  """The whole value of every array on every process (numpy with several
  processes; the identity with one)."""
  if jax.process_count() == 1:
    return tree
  return multihost_utils.process_allgather(tree, tiled=True)


def map_member_groups(fn, tree_S, *shared, group: int):
  """`fn(tree_G, *shared)` over groups of `group` members, one at a time.

  `fn` maps a leading member axis of `tree_G` (and of its outputs). Each
  device takes its own members (`jax.shard_map` over the mesh, one device
  included; `shared` is replicated) and runs them in groups of `group`,
  one group after another in a loop whose trip count is a runtime value,
  so XLA compiles the same group computation whatever the member count (a
  static count of 1 would be inlined and fused differently): results are
  bitwise independent of the member count and of the device count. The
  leading axis must be a multiple of devices x group
  (`pad_members(..., group)`).
  """
  total = jax.tree.leaves(tree_S)[0].shape[0]
  per_device = total // num_devices()

  def local(tree_L, count, *shared):
    split = lambda v: v.reshape((per_device // group, group) + v.shape[1:])
    grouped = jax.tree.map(split, tree_L)
    take = lambda i: jax.tree.map(lambda v: v[i], grouped)
    out_like = jax.eval_shape(fn, take(0), *shared)
    out = jax.tree.map(lambda o: jnp.zeros((per_device // group,) + o.shape,
                                           o.dtype), out_like)

    def body(i, out):
      res = fn(take(i), *shared)
      return jax.tree.map(lambda o, r: o.at[i].set(r), out, res)

    out = jax.lax.fori_loop(0, count, body, out)
    return jax.tree.map(lambda v: v.reshape((per_device,) + v.shape[2:]), out)

  spec = PartitionSpec(MESH_AXIS)
  count = jnp.asarray(per_device // group, jnp.int32)
  return jax.shard_map(local, mesh=mesh(),
                       in_specs=(spec,) + (PartitionSpec(),) * (1 + len(shared)),
                       out_specs=spec, check_vma=False)(tree_S, count, *shared)
