"""Training and evaluation of one model (spec ``realsmilenet.md`` §4-§7).

Objective (spec §5), for a batch of B examples with labels y_b in {0, 1} (1 = spontaneous), logits z_b and weights
w_b (the step takes weights for generality; ``fit`` passes 1 for every example, see "Batches" below):

    loss = sum_b w_b * BCE(z_b, y_b) / sum_b w_b  +  l2_weight * sum_W ||W||_2
    BCE(z, y) = max(z, 0) - z * y + log(1 + exp(-|z|))            (= -y log p - (1 - y) log(1 - p), p = sigmoid(z))

with ||W||_2 = sqrt(sum w^2) over every parameter tensor (unsquared; ``smilejax.models.layers.safe_l2_norm`` has a
zero gradient at the all-zero non-local BatchNorm tensors, spec §5 "NaN trap"). Adam (lr 1e-3, betas 0.9/0.999,
eps 1e-8, no decay, no schedule) via optax.

State: ``TrainState(step, params, batch_stats, opt_state, rng)``. ``train_step`` and ``eval_step`` are pure functions,
jitted once per (model, optimiser) and cached, so every fold reuses the compiled code (jit recompiles only for a new
input shape, i.e. a new bucket length). The dropout key of step s is ``fold_in(rng, s)``; the order of epoch e is
``np.random.default_rng([seed, e]).permutation(n)``. Both depend on nothing else, so a run resumed from the
checkpoint of epoch e continues exactly as the uninterrupted run would.

Batches (DECISION, documented here): every training batch holds B real examples. An epoch visits the permutation in
order; when n is not a multiple of B, the last batch is completed cyclically with the first B - (n mod B) examples of
the same permutation (these few examples are seen twice in that epoch; which ones changes every epoch). Why not a
padded, masked partial batch as PyTorch's ``drop_last=False``: the masked rows would have to be kept out of every
BatchNorm's statistics, which the AU-wise / cross-AU ``VectorNet`` does not support (it ignores lengths), and a
PyTorch partial batch of 1 video makes a BatchNorm over videos degenerate; why not dropping the remainder: on small
corpora it discards a large share of the data every epoch. Shapes stay static: B is fixed and the time axis is padded
at the end to a multiple of ``bucket`` (``smilejax.data.pad_to_bucket``) with the true lengths passed to the model,
so each (model, bucket length) compiles once. Evaluation has no coupling between examples (BatchNorm uses running
statistics), so evaluation batches are sorted by length (less padding) and a short last batch is filled with copies
of a real example whose outputs are discarded.

Selection (spec §6): ``selection="val"`` trains ``epochs`` epochs on the training subjects minus an inner validation
split, evaluates the validation split after every epoch and selects the epoch with the best validation accuracy
(ties: lower validation loss, then the earlier epoch); the test split is evaluated once, at the end, with that
epoch's weights. ``selection="fixed"`` trains exactly ``epochs`` epochs on all training subjects and tests the final
weights. Test data are never looked at before the end.

Data parallelism: a model built with a ``batch_axis_name`` field (RealSmileNet) splits each training batch over
``train.data_parallel`` local devices (0 = all; the largest divisor of B not above it) with ``jax.shard_map``: only
the model's apply is split, its BatchNorms sum their statistics over the devices and every video draws its own
dropout masks (``models.layers.RowDropout``), so the step computes what one device would, up to float32 summation
order; the loss, gradient and Adam update are those of the whole batch. On a CPU, ``configure_cpu_devices`` (called
by ``bin/`` before JAX starts) presents one device per core: XLA then runs one batch shard per core, which on the
2-core development CPU took the RealSmileNet step (B = 16, T = 50) from 464 to 368 ms (median, same process,
interleaved; ``benchmarks/README.md``). Evaluation runs on one device.

Accuracy counts p > 0.5 (logit > 0) as spontaneous. Validation loss is the mean BCE (no regulariser).

Files in ``model_dir``: ``config.json`` (model, training options, epochs, seed, input kind), ``metrics.jsonl`` (one
JSON per epoch: epoch, step, train_loss, val_loss, val_acc, seconds), ``checkpoints/`` (orbax CheckpointManager, step = epoch;
saved every epoch, or with ``checkpoint_interval_s`` > 0 only at new bests, the last epoch and at most every that
many seconds -- see ``fit``; the latest saved epoch (for resuming) and the best by the selection rule are kept; each
step holds the train state and the training history), ``standardizer.npz`` (AUDA models: per-feature mean and std of the training split;
std of a constant feature := 1).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging as pylogging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from orbax.checkpoint import checkpoint_managers as ocp_policies

from smilejax import models
from smilejax.errors import InputError
from smilejax.models.layers import safe_l2_norm

# Options of train_cfg with their defaults (spec §5); configs/*.py hold the values actually used.
TRAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 16,
    "eval_batch_size": 16,
    "learning_rate": 1e-3,
    "adam_b1": 0.9,
    "adam_b2": 0.999,
    "adam_eps": 1e-8,
    "l2_weight": 1e-3,
    "selection": "val",     # "val" | "fixed"
    "epochs": 0,            # > 0 overrides every model's own `epochs`
    "bucket": 16,           # time axis padded to a multiple of this
    "checkpoint_interval_s": 0.0,  # 0: save every epoch; > 0: see fit() ("Checkpoints")
    "data_parallel": 0,     # local devices a training batch is split over (0 = all; module docstring)
}
BATCH_AXIS = "batch"  # the mesh axis of the data-parallel step
SELECTIONS = ("val", "fixed")
CHECKPOINT_DIR = "checkpoints"


# ----------------------------------------------------------------------------------------------------------- data


@dataclasses.dataclass
class Examples:
  """One split's inputs: ``x`` is a list of per-video arrays [T_i, ...] (sequence models) or one array [N, D];
  ``y`` int labels [N] (0 posed, 1 spontaneous); ``ids`` the video ids, same order."""

  x: list[np.ndarray] | np.ndarray
  y: np.ndarray
  ids: tuple[str, ...] = ()

  def __post_init__(self):
    self.y = np.asarray(self.y, np.int32).reshape(-1)
    if not self.ids:
      self.ids = tuple(str(i) for i in range(len(self.y)))
    self.ids = tuple(self.ids)
    if len(self.x) != len(self.y) or len(self.ids) != len(self.y):
      raise ValueError(f"Examples: {len(self.x)} inputs, {len(self.y)} labels, {len(self.ids)} ids")

  @property
  def sequential(self) -> bool:
    return isinstance(self.x, (list, tuple))

  def __len__(self) -> int:
    return len(self.y)

  def lengths(self) -> np.ndarray:
    if self.sequential:
      return np.array([len(a) for a in self.x], np.int32)
    return np.ones(len(self), np.int32)


def as_examples(split: Any) -> Examples | None:
  """``Examples`` from an Examples, a mapping with keys x, y (and ids), or None."""
  if split is None or isinstance(split, Examples):
    return split
  if isinstance(split, Mapping):
    return Examples(split["x"], split["y"], tuple(split.get("ids", ())))
  raise TypeError(f"expected Examples or a mapping with x and y, got {type(split).__name__}")


@dataclasses.dataclass(frozen=True)
class Standardizer:
  """x' = (x - mean) / std per feature (last axis), statistics of the training split only (spec §7)."""

  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def fit(cls, x: list[np.ndarray] | np.ndarray) -> "Standardizer":
    """Mean and (population) std of every feature over all training rows (all real frames for sequences).

    A feature that is constant on the training split (max == min, tested exactly) gets std 1.
    """
    rows = np.concatenate([np.asarray(a, np.float64) for a in x], axis=0) if isinstance(x, (list, tuple)) \
        else np.asarray(x, np.float64)
    rows = rows.reshape(-1, rows.shape[-1])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(rows.max(axis=0) == rows.min(axis=0), 1.0, std)
    return cls(mean, std)

  def apply(self, x: list[np.ndarray] | np.ndarray) -> list[np.ndarray] | np.ndarray:
    if isinstance(x, (list, tuple)):
      return [self.apply(a) for a in x]
    return ((np.asarray(x, np.float64) - self.mean) / self.std).astype(np.float32)

  def save(self, path: Path) -> None:
    _atomic_write(Path(path), lambda f: np.savez(f, mean=self.mean, std=self.std), binary=True)

  @classmethod
  def load(cls, path: Path) -> "Standardizer":
    try:
      with np.load(path) as z:
        return cls(np.asarray(z["mean"]), np.asarray(z["std"]))
    except (OSError, KeyError, ValueError) as e:
      raise InputError(f"{path}: cannot read the standardizer ({type(e).__name__}: {e})") from e


def _take_batch(ex: Examples, idx: np.ndarray, *, bucket: int) -> tuple[np.ndarray, np.ndarray]:
  """Inputs and lengths of the examples ``idx``: sequences padded at the end to a multiple of ``bucket``."""
  if ex.sequential:
    from smilejax import data  # lazy: data imports the readers, which the models do not need
    x, lengths = data.pad_to_bucket([ex.x[i] for i in idx], bucket=bucket)
    return np.asarray(x), np.asarray(lengths, np.int32)
  return np.asarray(ex.x[idx]), np.ones(len(idx), np.int32)


def epoch_order(n: int, *, batch_size: int, seed: int, epoch: int) -> np.ndarray:
  """Example indices of epoch ``epoch`` (0-based) as [n_batches, batch_size]: a seeded permutation, the last batch
  completed cyclically from the start of the same permutation (module docstring, "Batches")."""
  perm = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
  n_batches = max(1, math.ceil(n / batch_size))
  return np.resize(perm, n_batches * batch_size).reshape(n_batches, batch_size)


def _eval_batches(ex: Examples, batch_size: int) -> list[np.ndarray]:
  """Index batches for evaluation: sorted by length (stable), the last one filled with copies of its first index
  (their outputs are dropped)."""
  order = np.argsort(ex.lengths(), kind="stable")
  out = []
  for start in range(0, len(order), batch_size):
    idx = order[start:start + batch_size]
    out.append(np.concatenate([idx, np.full(batch_size - len(idx), idx[0])]) if len(idx) < batch_size else idx)
  return out


# ------------------------------------------------------------------------------------------------ state and steps


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step (a pytree; saved whole at every epoch)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array  # base dropout key (raw uint32[2]); step s uses fold_in(rng, s)

  def as_dict(self) -> dict[str, Any]:
    return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
            "opt_state": self.opt_state, "rng": self.rng}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "TrainState":
    return cls(step=d["step"], params=d["params"], batch_stats=d["batch_stats"], opt_state=d["opt_state"],
               rng=d["rng"])

  @property
  def variables(self) -> dict[str, Any]:
    return _variables(self.params, self.batch_stats)


def _variables(params: Any, batch_stats: Any) -> dict[str, Any]:
  v = {"params": params}
  if jax.tree_util.tree_leaves(batch_stats):
    v["batch_stats"] = batch_stats
  return v


def bce_with_logits(logit: jax.Array, y: jax.Array) -> jax.Array:
  """Elementwise BCE from logits: max(z, 0) - z y + log1p(exp(-|z|)) (stable form of -y log p - (1-y) log(1-p))."""
  return jnp.maximum(logit, 0.0) - logit * y + jnp.log1p(jnp.exp(-jnp.abs(logit)))


def l2_penalty(params: Any) -> jax.Array:
  """sum over every parameter tensor W of ||W||_2 (unsquared), spec §5."""
  return sum(safe_l2_norm(p) for p in jax.tree_util.tree_leaves(params))


def _prepare_input(x: jax.Array) -> jax.Array:
  """Frames arrive as uint8 (4x less to move) and become float32 in [0, 1] here (spec §2: divided by 255)."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 255.0
  return x.astype(jnp.float32)


def train_step(state: TrainState, x: jax.Array, lengths: jax.Array, y: jax.Array, w: jax.Array, *,
               module: Any, tx: optax.GradientTransformation, l2_weight: float, mesh: Mesh | None = None):
  """One Adam step on the objective of the module docstring. Returns (new state, metrics dict of scalars).

  With a ``mesh`` (axis ``BATCH_AXIS``) the model's apply runs split over the batch (module docstring; ``module``
  must then have ``batch_axis_name=BATCH_AXIS``)."""
  x = _prepare_input(x)
  dropout_key = jax.random.fold_in(state.rng, state.step)

  def apply(params, batch_stats, x, lengths, key):
    (logit, _), updates = module.apply(_variables(params, batch_stats), x, lengths, train=True,
                                       rngs={"dropout": key}, mutable=["batch_stats"])
    return logit, updates

  if mesh is not None:
    split, whole = PartitionSpec(BATCH_AXIS), PartitionSpec()
    apply = jax.shard_map(apply, mesh=mesh, in_specs=(whole, whole, split, split, whole), out_specs=(split, whole))

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
  return module.apply(variables, _prepare_input(x), lengths, train=False)


def make_optimizer(train_cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  """Adam(lr, b1, b2, eps), no weight decay, no schedule (spec §5)."""
  return optax.adam(float(train_cfg["learning_rate"]), b1=float(train_cfg["adam_b1"]),
                    b2=float(train_cfg["adam_b2"]), eps=float(train_cfg["adam_eps"]))


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


def _init_variables(key: jax.Array, x: jax.Array, lengths: jax.Array, *, module: Any,
                    tx: optax.GradientTransformation):
  variables = module.init({"params": key}, _prepare_input(x), lengths, train=False)
  params = variables["params"]
  return params, variables.get("batch_stats", {}), tx.init(params)


def configure_cpu_devices(n: int = 0) -> None:
  """Present the CPU to JAX as ``n`` devices (0 = one per core this process may use), so that the data-parallel
  training step runs one batch shard per core. Effective only before JAX initialises its backends (``bin/`` calls it
  first); later, or where the user already set ``jax_num_cpu_devices``, it leaves things as they are."""
  n = n or len(os.sched_getaffinity(0))
  if jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return  # the user's own setting wins
  try:
    jax.config.update("jax_num_cpu_devices", n)
  except RuntimeError as e:  # the backends are already up
    logging.warning("configure_cpu_devices(%d) ignored: %s", n, e)


def data_parallel_devices(requested: int, batch_size: int, available: int) -> int:
  """Devices a training batch is split over: ``requested`` (0 = all ``available``) capped at ``available``, then
  the largest divisor of ``batch_size`` not above that (every device gets the same number of examples)."""
  n = max(1, min(int(requested) or available, available, int(batch_size)))
  while batch_size % n:
    n -= 1
  return n


@functools.lru_cache(maxsize=None)
def _steps_cached(arch: str, module_json: str, opt_json: str, n_devices: int) -> Steps:
  module = models.build(arch, json.loads(module_json))
  opt = json.loads(opt_json)
  tx = make_optimizer(opt)
  step_fn = functools.partial(train_step, tx=tx, l2_weight=float(opt["l2_weight"]))
  es = jax.jit(functools.partial(eval_step, module=module))
  init = jax.jit(functools.partial(_init_variables, module=module, tx=tx))
  if n_devices == 1:
    return Steps(module, tx, jax.jit(functools.partial(step_fn, module=module)), es, init)
  mesh = Mesh(np.array(jax.local_devices()[:n_devices]), (BATCH_AXIS,))
  dp_step = jax.jit(functools.partial(step_fn, module=module.clone(batch_axis_name=BATCH_AXIS), mesh=mesh))
  replicated = NamedSharding(mesh, PartitionSpec())

  def ts(state, *batch):
    if state.step.sharding != replicated:  # a fresh or restored state, on one device (checking one leaf: 2 ms less)
      state = jax.device_put(state, replicated)
    return dp_step(state, *batch)

  return Steps(module, tx, ts, es, init, mesh)


def get_steps(arch: str, module_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any]) -> Steps:
  """The (cached) module and jitted steps for architecture ``arch`` with these options; the training step is
  data-parallel where the architecture supports it and ``train_cfg`` (``data_parallel``, ``batch_size``) and the
  local devices allow (module docstring)."""
  fields = models.model_fields(arch)
  module_kw = {k: _jsonable(v) for k, v in sorted(dict(module_cfg).items()) if k in fields}
  opt = {k: float(train_cfg[k]) for k in ("learning_rate", "adam_b1", "adam_b2", "adam_eps", "l2_weight")}
  n_devices = 1
  if "batch_axis_name" in fields:
    n_devices = data_parallel_devices(train_cfg.get("data_parallel", 0), int(train_cfg["batch_size"]),
                                      jax.local_device_count())
  return _steps_cached(arch, json.dumps(module_kw, sort_keys=True), json.dumps(opt, sort_keys=True), n_devices)


def init_state(steps: Steps, example_x: np.ndarray, *, seed: int) -> TrainState:
  """Fresh parameters (key derived from ``seed``), Adam state and the base dropout key."""
  init_key, dropout_key = jax.random.split(jax.random.PRNGKey(int(seed)))
  x = jnp.asarray(example_x[None])
  lengths = jnp.full((1,), example_x.shape[0] if example_x.ndim > 1 else 1, jnp.int32)
  params, batch_stats, opt_state = steps.init(init_key, x, lengths)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=opt_state, rng=dropout_key)


# ------------------------------------------------------------------------------------------------- evaluation


def predict(steps: Steps, variables: Any, ex: Examples, *, batch_size: int, bucket: int,
            standardizer: Standardizer | None = None, want_features: bool = False):
  """Evaluation-mode logits [N] (and final-branch features [N, F]) of every example, in ``ex`` order."""
  n = len(ex)
  logits = np.zeros(n, np.float32)
  feats = None
  for idx in _eval_batches(ex, batch_size):
    x, lengths = _take_batch(ex, idx, bucket=bucket)
    if standardizer is not None:
      x = standardizer.apply(x)
    logit, f = steps.eval_step(variables, x, lengths)
    logit, f = np.asarray(logit), (np.asarray(f) if want_features else None)
    # Fill copies were appended after the real rows; keep the first occurrence of each index.
    _, first = np.unique(idx, return_index=True)
    keep = np.zeros(len(idx), bool)
    keep[first] = True
    logits[idx[keep]] = logit[keep]
    if want_features:
      if feats is None:
        feats = np.zeros((n, f.shape[-1]), np.float32)
      feats[idx[keep]] = f[keep]
  return (logits, feats) if want_features else logits


def accuracy_and_loss(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  """Accuracy (p > 0.5 means spontaneous) and mean BCE."""
  y = np.asarray(y, np.float64)
  z = np.asarray(logits, np.float64)
  bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
  return float(np.mean((z > 0) == (y > 0.5))), float(np.mean(bce))


def sigmoid(z: np.ndarray) -> np.ndarray:
  z = np.asarray(z, np.float64)
  return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


# ------------------------------------------------------------------------------------------------ checkpoints


def selection_key(metrics: Mapping[str, Any]) -> tuple[float, float, float]:
  """Larger is better: best validation accuracy, then lower validation loss, then the earlier epoch (spec §6)."""
  return (float(metrics["val_acc"]), -float(metrics["val_loss"]), -float(metrics["epoch"]))


class _QuietOrbax(pylogging.Filter):
  """Drops orbax's INFO chatter (several lines per save) from the absl log; its warnings and errors still pass."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    return record.levelno >= pylogging.WARNING or f"{os.sep}orbax{os.sep}" not in (record.pathname or "")


_QUIET = _QuietOrbax()


def _quiet_orbax_logging() -> None:
  logger = pylogging.getLogger("absl")
  if _QUIET not in logger.filters:
    logger.addFilter(_QUIET)


def _checkpoint_manager(model_dir: Path, *, track_best: bool, read_only: bool = False) -> ocp.CheckpointManager:
  """Orbax manager in ``model_dir/checkpoints``: one step per epoch; keeps the latest and (val) the best.

  ``read_only``: open for loading only (creates nothing, removes nothing; nothing is saved through it)."""
  _quiet_orbax_logging()
  policies = [ocp_policies.LatestN(n=1)]
  if track_best:
    policies.append(ocp_policies.BestN(get_metric_fn=selection_key, n=1, keep_checkpoints_without_metrics=False))
  options = ocp.CheckpointManagerOptions(
      best_fn=selection_key if track_best else None, best_mode="max",
      preservation_policy=ocp_policies.AnyPreservationPolicy(policies),
      enable_async_checkpointing=False, create=not read_only, cleanup_tmp_directories=not read_only)
  ckpt_dir = (Path(model_dir) / CHECKPOINT_DIR).absolute()
  try:
    return ocp.CheckpointManager(ckpt_dir, options=options, item_names=("state", "history"))
  except Exception as e:  # noqa: BLE001 -- any failure to open is reported as bad input, one line
    raise InputError(f"{ckpt_dir}: cannot open the checkpoint directory ({_one_line(e)})") from e


def _restore(mngr: ocp.CheckpointManager, step: int, template: TrainState) -> tuple[TrainState, dict]:
  template_tree = jax.tree_util.tree_map(np.asarray, template.as_dict())
  try:
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template_tree),
                                                     history=ocp.args.JsonRestore()))
    state = TrainState.from_dict(jax.tree_util.tree_map(jnp.asarray, dict(out["state"])))
    history = dict(out["history"])
    if jax.tree_util.tree_structure(state) != jax.tree_util.tree_structure(template):
      raise ValueError("state structure differs from the model's")
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(template)):
      if a.shape != b.shape:
        raise ValueError(f"array shape {a.shape} != {b.shape}")
    if not isinstance(history.get("epochs"), list):
      raise ValueError("history has no epochs list")
  except Exception as e:  # noqa: BLE001 -- corrupt or foreign checkpoint: one line naming the directory
    raise InputError(f"{Path(mngr.directory)}: broken checkpoint at epoch {step} ({_one_line(e)}); delete the "
                     f"directory to retrain") from e
  return state, history


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:200]}"


def _atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = False) -> None:
  """Write via a temporary file in the same folder and os.replace (never a half-written file)."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  with open(tmp, "wb" if binary else "w") as f:
    write(f)
  os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
  _atomic_write(Path(path), lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def _jsonable(v: Any) -> Any:
  if hasattr(v, "to_dict"):
    v = v.to_dict()
  if isinstance(v, Mapping):
    return {str(k): _jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_jsonable(x) for x in v]
  if isinstance(v, (np.integer,)):
    return int(v)
  if isinstance(v, (np.floating,)):
    return float(v)
  return v


# ------------------------------------------------------------------------------------------------------- fit


@dataclasses.dataclass
class FitResult:
  """Outcome of ``fit`` for one model on one fold."""

  method: str
  arch: str
  selected_epoch: int
  epochs: int
  test_ids: tuple[str, ...]
  test_prob: np.ndarray           # P(spontaneous) per test video, ``test_ids`` order
  test_acc: float
  val_acc: float | None
  val_loss: float | None
  history: list[dict]
  variables: Any                  # {'params', ['batch_stats']} of the selected epoch
  module: Any
  steps: Steps
  standardizer: Standardizer | None
  model_dir: Path
  features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # split -> [N, F], eval mode
  train_seconds: float = 0.0

  def predict(self, x: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    return _predict_batch(self.steps, self.variables, self.standardizer, x, lengths)


def _predict_batch(steps: Steps, variables: Any, standardizer: Standardizer | None, x: Any, lengths: Any):
  if standardizer is not None:
    x = standardizer.apply(np.asarray(x))
  logit, feats = steps.eval_step(variables, x, jnp.asarray(lengths, jnp.int32))
  return sigmoid(np.asarray(logit)), np.asarray(feats)


def resolve_epochs(train_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any]) -> int:
  """``train.epochs`` when > 0 (an override for every model), otherwise the model's own ``epochs``."""
  override = int(train_cfg.get("epochs", 0) or 0)
  epochs = override if override > 0 else int(model_cfg.get("epochs", 0) or 0)
  if epochs <= 0:
    raise ValueError("no epochs configured: set the model's `epochs` or train.epochs > 0")
  return epochs


def _train_options(train_cfg: Any) -> dict[str, Any]:
  cfg = dict(TRAIN_DEFAULTS)
  cfg.update({k: v for k, v in _jsonable(train_cfg).items() if k in TRAIN_DEFAULTS})
  if cfg["selection"] not in SELECTIONS:
    raise ValueError(f"train.selection must be one of {SELECTIONS}, got {cfg['selection']!r}")
  return cfg


def fit(model_name: str, model_cfg: Any, train_cfg: Any, data: Mapping[str, Any], model_dir: str | Path, *,
        seed: int = 0, log_prefix: str = "", feature_splits: Sequence[str] = (),
        epoch_callback: Callable[[int, dict], None] | None = None) -> FitResult:
  """Train one model on one fold and test the selected epoch once.

  model_name: the method key used in logs and errors (e.g. "realsmilenet", "fusion_all"); the architecture is
    ``model_cfg.name`` (default: ``model_name``), built by ``smilejax.models.build`` from ``model_cfg``'s fields.
  model_cfg: the model's options plus ``epochs`` and ``standardize`` (bool: per-feature standardisation).
  train_cfg: see ``TRAIN_DEFAULTS``.
  data: {"train": Examples, "val": Examples or None, "test": Examples} (or mappings with x, y, ids).
    With selection "val" the validation split must be non-empty; with "fixed" it is ignored.
  model_dir: the model's folder (config.json, metrics.jsonl, checkpoints/, standardizer.npz). A run whose
    checkpoints exist resumes from its latest epoch; a folder holding a run with another configuration is refused.
  feature_splits: splits whose final-branch features (eval mode, selected epoch) are returned in
    ``FitResult.features`` (what late fusion needs).
  epoch_callback: called as ``epoch_callback(epoch, record)`` after each epoch is saved (tests use it to interrupt).

  Checkpoints: with ``train_cfg.checkpoint_interval_s == 0`` every epoch is saved. With a positive interval an epoch
  is saved when it is a new best (selection "val"), the last one, or at least that many seconds after the previous
  save -- an orbax save costs ~0.1-0.2 s, more than a whole epoch of the small AUDA models and fusion heads. Either
  way the best epoch's weights are on disk, and a resumed run repeats the unsaved epochs bit for bit (their
  shuffles and dropout keys depend only on the seed, the epoch and the step), so the result does not change.
  """
  t_start = time.time()
  model_cfg_d = _jsonable(model_cfg) or {}
  arch = model_cfg_d.get("name", model_name)
  tcfg = _train_options(train_cfg)
  epochs = resolve_epochs(tcfg, model_cfg_d)
  selection = tcfg["selection"]
  train = as_examples(data["train"])
  val = as_examples(data.get("val")) if selection == "val" else None
  test = as_examples(data["test"])
  if selection == "val" and (val is None or len(val) == 0):
    raise ValueError(f"{model_name}: selection 'val' needs a non-empty validation split")
  if len(train) == 0:
    raise ValueError(f"{model_name}: empty training split")
  model_dir = Path(model_dir)
  model_dir.mkdir(parents=True, exist_ok=True)
  bucket, bsz, ebsz = int(tcfg["bucket"]), int(tcfg["batch_size"]), int(tcfg["eval_batch_size"])

  # Shape of one example without the time axis: what load_trained needs to rebuild the parameter template.
  input_shape = list(np.shape(train.x[0])[1:] if train.sequential else np.shape(train.x[0]))
  run_config = {"method": model_name, "arch": arch, "model": model_cfg_d, "train": tcfg, "epochs": epochs,
                "seed": int(seed), "input": "sequence" if train.sequential else "vector", "input_shape": input_shape,
                "n_train": len(train), "n_val": len(val) if val is not None else 0, "n_test": len(test)}
  _check_or_write_config(model_dir / "config.json", run_config)

  standardizer = None
  if model_cfg_d.get("standardize", False):
    standardizer = Standardizer.fit(train.x)
    standardizer.save(model_dir / "standardizer.npz")
    train, val, test = (None if ex is None else Examples(standardizer.apply(ex.x), ex.y, ex.ids)
                        for ex in (train, val, test))

  steps = get_steps(arch, model_cfg_d, tcfg)
  template = init_state(steps, _example_input(run_config), seed=seed)

  mngr = _checkpoint_manager(model_dir, track_best=selection == "val")
  state, history = template, {"epochs": []}
  latest = mngr.latest_step()
  if latest is not None:
    if latest > epochs:
      raise InputError(f"{mngr.directory}: holds epoch {latest} > the configured {epochs} epochs")
    state, history = _restore(mngr, latest, template)
    logging.info("%s%s: resuming after epoch %d of %d", log_prefix, model_name, latest, epochs)
  records = list(history["epochs"])[:latest or 0]
  _rewrite_metrics(model_dir / "metrics.jsonl", records)

  train_y = train.y.astype(np.float32)
  ones = np.ones(bsz, np.float32)
  interval = float(tcfg["checkpoint_interval_s"])
  last_save = time.time()
  for epoch in range(len(records) + 1, epochs + 1):
    t0 = time.time()
    order = epoch_order(len(train), batch_size=bsz, seed=seed, epoch=epoch - 1)
    losses = []
    for idx in order:
      x, lengths = _take_batch(train, idx, bucket=bucket)
      state, m = steps.train_step(state, x, lengths, train_y[idx], ones)
      loss = float(m["loss"])
      if not math.isfinite(loss):
        raise FloatingPointError(f"{model_name}: non-finite training loss {loss} at step {int(state.step)} "
                                 f"(epoch {epoch}); aborting")
      losses.append(loss)
    record = {"epoch": epoch, "step": int(state.step), "train_loss": float(np.mean(losses)),
              "val_loss": None, "val_acc": None, "devices": 1 if steps.mesh is None else steps.mesh.size}
    if val is not None:
      vacc, vloss = accuracy_and_loss(predict(steps, steps.on_one_device(state.variables), val, batch_size=ebsz,
                                              bucket=bucket), val.y)
      record.update(val_loss=vloss, val_acc=vacc)
    record["seconds"] = round(time.time() - t0, 3)
    records.append(record)
    new_best = val is not None and select_epoch(records, selection) == epoch
    if interval <= 0 or new_best or epoch == epochs or time.time() - last_save >= interval:
      metrics = ({k: record[k] for k in ("epoch", "val_acc", "val_loss")} if val is not None else None)
      mngr.save(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardSave(jax.tree_util.tree_map(np.asarray, state.as_dict())),
          history=ocp.args.JsonSave({"epochs": records})), metrics=metrics)
      mngr.wait_until_finished()
      last_save = time.time()
    with open(model_dir / "metrics.jsonl", "a") as f:
      f.write(json.dumps(record) + "\n")
    eta = np.mean([r["seconds"] for r in records[-3:]]) * (epochs - epoch)
    logging.info("%s%s epoch %d/%d: train_loss %.4f%s (%.1f s, ETA %.0f s)", log_prefix, model_name, epoch,
                 epochs, record["train_loss"],
                 f", val_loss {record['val_loss']:.4f} val_acc {record['val_acc']:.3f}" if val is not None else "",
                 record["seconds"], eta)
    if epoch_callback is not None:
      epoch_callback(epoch, record)

  # Selection (never on test data), then one test evaluation.
  selected = select_epoch(records, selection)
  if selected != len(records):  # the weights in memory are those of the last epoch
    state, _ = _restore(mngr, selected, template)
  mngr.close()
  variables = steps.on_one_device(state.variables)
  test_logits = predict(steps, variables, test, batch_size=ebsz, bucket=bucket)
  test_acc, _ = accuracy_and_loss(test_logits, test.y)
  sel = records[selected - 1]
  feats = {}
  for name in feature_splits:
    ex = {"train": train, "val": val, "test": test}[name]
    if ex is not None:
      feats[name] = predict(steps, variables, ex, batch_size=ebsz, bucket=bucket, want_features=True)[1]
  logging.info("%s%s: selected epoch %d of %d%s; test accuracy %.3f", log_prefix, model_name, selected, epochs,
               f" (val_acc {sel['val_acc']:.3f})" if val is not None else "", test_acc)
  return FitResult(method=model_name, arch=arch, selected_epoch=selected, epochs=epochs, test_ids=test.ids,
                   test_prob=sigmoid(test_logits), test_acc=test_acc, val_acc=sel["val_acc"],
                   val_loss=sel["val_loss"], history=records, variables=variables, module=steps.module,
                   steps=steps, standardizer=standardizer, model_dir=model_dir, features=feats,
                   train_seconds=time.time() - t_start)


def select_epoch(records: Sequence[Mapping[str, Any]], selection: str) -> int:
  """1-based epoch chosen by the selection rule (spec §6): the last epoch for "fixed"; for "val" the best by
  ``selection_key``."""
  if not records:
    raise ValueError("no epochs trained")
  if selection == "fixed":
    return int(records[-1]["epoch"])
  return int(max(records, key=selection_key)["epoch"])


# Training options that cannot change a result (a run may be resumed with other values).
# data_parallel: the split changes only the float32 summation order (module docstring), as does another core count.
RESULT_NEUTRAL_TRAIN_KEYS = ("checkpoint_interval_s", "data_parallel")


def _comparable(run_config: Mapping[str, Any]) -> dict:
  out = json.loads(json.dumps(run_config))
  for k in RESULT_NEUTRAL_TRAIN_KEYS:
    out.get("train", {}).pop(k, None)
  return out


def _check_or_write_config(path: Path, run_config: dict) -> None:
  if path.exists():
    try:
      old = _comparable(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
      raise InputError(f"{path}: unreadable run configuration ({_one_line(e)})") from e
    new = _comparable(run_config)
    if old != new:
      diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      raise InputError(f"{path.parent}: holds a run with another configuration (differs in {', '.join(diff)}); "
                       f"use another workdir or delete it")
    return
  write_json(path, run_config)


def _rewrite_metrics(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
  """metrics.jsonl := the checkpointed history (drops lines of an epoch whose checkpoint was never completed)."""
  _atomic_write(path, lambda f: f.writelines(json.dumps(dict(r)) + "\n" for r in records))


# ------------------------------------------------------------------------------------------------ load_trained


@dataclasses.dataclass
class TrainedModel:
  """A trained model loaded from its folder (architecture, selected weights, standardizer, config)."""

  module: Any
  variables: Any
  standardizer: Standardizer | None
  config: dict
  selected_epoch: int
  steps: Steps

  def predict(self, x: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    """(P(spontaneous)_B, feats_BxF) in evaluation mode; ``x`` raw (un-standardised) inputs, frames uint8 or [0,1]."""
    return _predict_batch(self.steps, self.variables, self.standardizer, x, lengths)


def load_trained(model_dir: str | Path) -> TrainedModel:
  """The selected epoch's weights of the run in ``model_dir`` (written by ``fit``)."""
  model_dir = Path(model_dir)
  cfg_path = model_dir / "config.json"
  if not cfg_path.exists():
    raise InputError(f"{model_dir}: not a trained model folder (no config.json)")
  try:
    cfg = json.loads(cfg_path.read_text())
    arch, tcfg, model_cfg = cfg["arch"], cfg["train"], cfg["model"]
  except (OSError, ValueError, KeyError) as e:
    raise InputError(f"{cfg_path}: unreadable run configuration ({_one_line(e)})") from e
  steps = get_steps(arch, model_cfg, tcfg)
  standardizer = None
  if model_cfg.get("standardize", False):
    standardizer = Standardizer.load(model_dir / "standardizer.npz")
  mngr = _checkpoint_manager(model_dir, track_best=tcfg["selection"] == "val", read_only=True)
  latest = mngr.latest_step()
  if latest is None:
    raise InputError(f"{mngr.directory}: no checkpoint")
  template = init_state(steps, _example_input(cfg), seed=0)  # shapes only; values come from the checkpoint
  state, history = _restore(mngr, latest, template)
  records = history["epochs"]
  selected = select_epoch(records, tcfg["selection"])
  if selected != latest:
    state, _ = _restore(mngr, selected, template)
  mngr.close()
  return TrainedModel(module=steps.module, variables=state.variables, standardizer=standardizer, config=cfg,
                      selected_epoch=selected, steps=steps)


def _example_input(run_config: Mapping[str, Any]) -> np.ndarray:
  """A zero example with the run's input shape (one time step for sequences): parameter shapes depend on nothing
  else (no parameter depends on T)."""
  shape = tuple(int(d) for d in run_config["input_shape"])
  return np.zeros(((1,) + shape) if run_config["input"] == "sequence" else shape, np.float32)


# ------------------------------------------------------------------------------------------ train_and_evaluate


def train_and_evaluate(config: Any, workdir: str | Path, *, method: str | None = None,
                       fold: int | None = None) -> FitResult:
  """Flax-examples-style entry point: train and test one method (default ``config.method``, else "realsmilenet")
  on one fold (default ``config.fold``, else 1) of the experiment config ``config`` (configs/*.py).

  Loads the corpus and its AUDA features itself (``smilejax.experiment.prepare``, cached on disk), splits the fold
  by subject and calls :func:`fit`; a fusion first trains (or reloads from their checkpoints) its member models.
  Model folders: ``<workdir>/fold_XX/<method>`` (the experiment's layout, so runs resume each other).
  """
  from smilejax import experiment  # lazy: experiment imports this module
  method = method or str(config.get("method", "") or "realsmilenet")
  fold = int(fold or config.get("fold", 0) or 1)
  if method not in experiment.METHODS:
    raise ValueError(f"unknown method {method!r}; expected one of {experiment.METHODS}")
  prepared = experiment.prepare(config)
  split = experiment.fold_split(prepared, config, fold)
  members = {}
  if method in experiment.FUSION_METHODS:
    for m in config.models[method].members:
      members[m] = experiment.fit_method(config, prepared, fold, m, split, workdir)
  return experiment.fit_method(config, prepared, fold, method, split, workdir, members=members)
