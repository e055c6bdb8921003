"""The objective, the jitted training and evaluation steps, and their data-parallel form (realsmilenet.md §5).

Objective, for B examples with labels y_b in {0, 1} (1 = spontaneous), logits z_b and weights w_b (``fit`` passes 1):

    loss = sum_b w_b * BCE(z_b, y_b) / sum_b w_b  +  l2_weight * sum_W ||W||_2
    BCE(z, y) = max(z, 0) - z * y + log(1 + exp(-|z|))     (= -y log p - (1 - y) log(1 - p), p = sigmoid(z))

with ||W||_2 unsquared, over every parameter tensor; Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8, no decay, no
schedule). The dropout key of step s is ``fold_in(rng, s)``: a resumed run draws what the uninterrupted one would.

Data parallelism: a model with a ``batch_axis_name`` field (RealSmileNet) runs its apply split over the batch on
``data_parallel`` local devices; its BatchNorms sum their statistics over the devices and every video draws its own
dropout masks (``models.layers.RowDropout``), so the step computes what one device would, up to float32 summation
order. Loss, gradient and Adam update are those of the whole batch; evaluation runs on one device.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from smilejax import models
from smilejax.fileio import jsonable
from smilejax.models.layers import safe_l2_norm
from smilejax.train.options import require_keys

BATCH_AXIS = "batch"  # the mesh axis of the data-parallel step
OPTIMIZER_KEYS = ("learning_rate", "adam_b1", "adam_b2", "adam_eps", "l2_weight")
STEP_KEYS = OPTIMIZER_KEYS + ("batch_size", "data_parallel")  # what get_steps reads from a train config


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step (a pytree; saved whole in each checkpoint)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array  # base dropout key (raw uint32[2]); step s uses fold_in(rng, s)

  def as_dict(self) -> dict[str, Any]:
    return {
      "step": self.step,
      "params": self.params,
      "batch_stats": self.batch_stats,
      "opt_state": self.opt_state,
      "rng": self.rng,
    }

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "TrainState":
    return cls(step=d["step"], params=d["params"], batch_stats=d["batch_stats"], opt_state=d["opt_state"], rng=d["rng"])

  @property
  def variables(self) -> dict[str, Any]:
    return model_variables(self.params, self.batch_stats)


def model_variables(params: Any, batch_stats: Any) -> dict[str, Any]:
  """{'params', ['batch_stats']}: the variables ``module.apply`` takes (no batch_stats entry when there are none)."""
  v = {"params": params}
  if jax.tree_util.tree_leaves(batch_stats):
    v["batch_stats"] = batch_stats
  return v


def bce_with_logits(logit: jax.Array, y: jax.Array) -> jax.Array:
  """Elementwise BCE from logits: max(z, 0) - z y + log1p(exp(-|z|)) (stable form of -y log p - (1-y) log(1-p))."""
  return jnp.maximum(logit, 0.0) - logit * y + jnp.log1p(jnp.exp(-jnp.abs(logit)))


def l2_penalty(params: Any) -> jax.Array:
  """sum over every parameter tensor W of ||W||_2, unsquared (realsmilenet.md §5); ``safe_l2_norm`` has a zero
  gradient at all-zero tensors (the non-local BatchNorm scales start at 0: §5 "NaN trap")."""
  return sum(safe_l2_norm(p) for p in jax.tree_util.tree_leaves(params))


def prepare_input(x: jax.Array) -> jax.Array:
  """Frames arrive as uint8 (4x less to move) and become float32 in [0, 1] here (realsmilenet.md §2: / 255)."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 255.0
  return x.astype(jnp.float32)


def split_over_batch(apply: Callable, mesh: Mesh) -> Callable:
  """``apply(params, batch_stats, x, lengths, key)`` run with ``jax.shard_map``: x and lengths split over the mesh's
  ``BATCH_AXIS``, logits gathered, the rest (and the batch_stats updates, summed inside the model) replicated."""
  split, whole = PartitionSpec(BATCH_AXIS), PartitionSpec()
  return jax.shard_map(apply, mesh=mesh, in_specs=(whole, whole, split, split, whole), out_specs=(split, whole))


def train_step(
  state: TrainState,
  x: jax.Array,
  lengths: jax.Array,
  y: jax.Array,
  w: jax.Array,
  *,
  module: Any,
  tx: optax.GradientTransformation,
  l2_weight: float,
  mesh: Mesh | None = None,
):
  """One Adam step on the objective of the module docstring. Returns (new state, metrics dict of scalars).

  With a ``mesh`` (axis ``BATCH_AXIS``) the model's apply runs split over the batch (``module`` must then have
  ``batch_axis_name=BATCH_AXIS``)."""
  x = prepare_input(x)
  dropout_key = jax.random.fold_in(state.rng, state.step)

  def apply(params, batch_stats, x, lengths, key):
    (logit, _), updates = module.apply(
      model_variables(params, batch_stats), x, lengths, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
    )
    return logit, updates

  if mesh is not None:
    apply = split_over_batch(apply, mesh)

  def loss_fn(params):
    logit, updates = apply(params, state.batch_stats, x, lengths, dropout_key)
    data_loss = jnp.sum(w * bce_with_logits(logit, y)) / jnp.maximum(jnp.sum(w), 1.0)
    reg = l2_penalty(params)
    return data_loss + l2_weight * reg, (data_loss, reg, updates, logit)

  (loss, (data_loss, reg, updates, logit)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  upd, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, upd)
  batch_stats = updates.get("batch_stats", state.batch_stats)
  correct = jnp.sum(w * ((logit > 0).astype(jnp.float32) == y))
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
  return new_state, {"loss": loss, "bce": data_loss, "l2": reg, "correct": correct}


def eval_step(variables: Any, x: jax.Array, lengths: jax.Array, *, module: Any):
  """Evaluation-mode forward pass (no dropout, running BatchNorm statistics): (logit_B, feats_BxF)."""
  return module.apply(variables, prepare_input(x), lengths, train=False)


def make_optimizer(train_cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  """Adam(lr, b1, b2, eps), no weight decay, no schedule (realsmilenet.md §5)."""
  return optax.adam(
    float(train_cfg["learning_rate"]),
    b1=float(train_cfg["adam_b1"]),
    b2=float(train_cfg["adam_b2"]),
    eps=float(train_cfg["adam_eps"]),
  )


def init_variables(key: jax.Array, x: jax.Array, lengths: jax.Array, *, module: Any, tx: optax.GradientTransformation):
  """(params, batch_stats, opt_state) of a fresh model initialised with ``key`` on the example batch ``x``."""
  variables = module.init({"params": key}, prepare_input(x), lengths, train=False)
  params = variables["params"]
  return params, variables.get("batch_stats", {}), tx.init(params)


@dataclasses.dataclass(frozen=True)
class Steps:
  """A built module with its jitted steps (cached: identical configs share compiled code across folds)."""

  module: Any
  tx: optax.GradientTransformation
  train_step: Callable
  eval_step: Callable
  init: Callable  # (key, x, lengths) -> (params, batch_stats, opt_state), jitted (op-by-op init is slow)
  mesh: Mesh | None = None  # the data-parallel training step's devices (None: one device)

  def on_one_device(self, tree: Any) -> Any:
    """``tree`` (e.g. variables of a data-parallel state, held on every device of the mesh) on the first device,
    where evaluation runs; unchanged without a mesh."""
    return tree if self.mesh is None else jax.device_put(tree, self.mesh.devices.flat[0])


def data_parallel_devices(requested: int, batch_size: int, available: int) -> int:
  """Devices a training batch is split over: ``requested`` (0 = all ``available``) capped at ``available``, then
  the largest divisor of ``batch_size`` not above that (every device gets the same number of examples)."""
  n = max(1, min(int(requested) or available, available, int(batch_size)))
  while batch_size % n:
    n -= 1
  return n


def replicate_then(step: Callable, mesh: Mesh) -> Callable:
  """``step(state, *batch)`` that first puts a state held on one device (fresh or restored) on every device of
  ``mesh``; a state the step returned is already there. Looking at one leaf's sharding is the cheap test."""
  replicated = NamedSharding(mesh, PartitionSpec())

  def run(state, *batch):
    if state.step.sharding != replicated:
      state = jax.device_put(state, replicated)
    return step(state, *batch)

  return run


@functools.lru_cache(maxsize=None)
def _steps_cached(arch: str, module_json: str, opt_json: str, n_devices: int) -> Steps:
  module = models.build(arch, json.loads(module_json))
  opt = json.loads(opt_json)
  tx = make_optimizer(opt)
  step_fn = functools.partial(train_step, tx=tx, l2_weight=float(opt["l2_weight"]))
  es = jax.jit(functools.partial(eval_step, module=module))
  init = jax.jit(functools.partial(init_variables, module=module, tx=tx))
  if n_devices == 1:
    return Steps(module, tx, jax.jit(functools.partial(step_fn, module=module)), es, init)
  mesh = Mesh(np.array(jax.local_devices()[:n_devices]), (BATCH_AXIS,))
  dp_step = jax.jit(functools.partial(step_fn, module=module.clone(batch_axis_name=BATCH_AXIS), mesh=mesh))
  return Steps(module, tx, replicate_then(dp_step, mesh), es, init, mesh)


def get_steps(arch: str, module_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any]) -> Steps:
  """The module and jitted steps for architecture ``arch`` with these options, built once per process for each
  configuration (every fold reuses the compiled code; jit recompiles only for a new bucket length). The training step
  is data-parallel where the architecture supports it and ``train_cfg`` (``data_parallel``, 0 = all local devices,
  and ``batch_size``, see ``data_parallel_devices``) and the local devices allow."""
  require_keys(train_cfg, STEP_KEYS, caller="get_steps")
  fields = models.model_fields(arch)
  module_kw = {k: jsonable(v) for k, v in sorted(dict(module_cfg).items()) if k in fields}
  opt = {k: float(train_cfg[k]) for k in OPTIMIZER_KEYS}
  n_devices = 1
  if "batch_axis_name" in fields:
    n_devices = data_parallel_devices(
      train_cfg["data_parallel"], int(train_cfg["batch_size"]), jax.local_device_count()
    )
  return _steps_cached(arch, json.dumps(module_kw, sort_keys=True), json.dumps(opt, sort_keys=True), n_devices)


def init_state(steps: Steps, example_x: np.ndarray, *, seed: int) -> TrainState:
  """Fresh parameters (key derived from ``seed``), Adam state and the base dropout key."""
  init_key, dropout_key = jax.random.split(jax.random.PRNGKey(int(seed)))
  x = jnp.asarray(example_x[None])
  lengths = jnp.full((1,), example_x.shape[0] if example_x.ndim > 1 else 1, jnp.int32)
  params, batch_stats, opt_state = steps.init(init_key, x, lengths)
  return TrainState(
    step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats, opt_state=opt_state, rng=dropout_key
  )
