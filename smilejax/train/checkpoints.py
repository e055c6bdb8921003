"""A run's checkpoints and the rule that selects its epoch (realsmilenet.md §6).

Selection "val": the epoch with the best validation accuracy, ties broken by the lower validation loss, then the
earlier epoch; "fixed": the last epoch. The orbax manager in ``<model_dir>/checkpoints`` holds one step per epoch
(the train state and the training history so far) and keeps the latest saved epoch (for resuming) and, with "val",
the best one. A damaged newest checkpoint is not fatal while an older one restores (``restore_newest``): the run goes
on from the older one and repeats the lost epochs exactly.
"""

from __future__ import annotations

import logging as pylogging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers as ocp_policies

from smilejax.errors import InputError
from smilejax.train.steps import TrainState

CHECKPOINT_DIR = "checkpoints"


def selection_key(metrics: Mapping[str, Any]) -> tuple[float, float, float]:
  """Larger is better: best validation accuracy, then lower validation loss, then the earlier epoch (§6)."""
  return (float(metrics["val_acc"]), -float(metrics["val_loss"]), -float(metrics["epoch"]))


def select_epoch(records: Sequence[Mapping[str, Any]], selection: str) -> int:
  """1-based epoch chosen by the selection rule: the last epoch for "fixed"; for "val" the best by
  ``selection_key``."""
  if not records:
    raise ValueError("no epochs trained")
  if selection == "fixed":
    return int(records[-1]["epoch"])
  return int(max(records, key=selection_key)["epoch"])


def one_line(e: BaseException) -> str:
  """``e`` as "Type: message" on one line, the whole message (for InputError texts)."""
  return f"{type(e).__name__}: {' '.join(str(e).split())}"


class _QuietOrbax(pylogging.Filter):
  """Drops orbax's INFO chatter (several lines per save) from the absl log; its warnings and errors still pass."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    return record.levelno >= pylogging.WARNING or f"{os.sep}orbax{os.sep}" not in (record.pathname or "")


_QUIET = _QuietOrbax()


def _quiet_orbax_logging() -> None:
  logger = pylogging.getLogger("absl")
  if _QUIET not in logger.filters:
    logger.addFilter(_QUIET)


class _DropClosedLoopCallbacks:
  """``sys.unraisablehook`` filter. When one read of an orbax restore fails, orbax closes its event loop while
  tensorstore still completes the other reads; their completion callbacks then meet the closed loop and each prints
  a "RuntimeError: Event loop is closed" traceback (from a tensorstore thread, possibly at exit). The failure itself
  is already reported (``restore``), so these echoes are dropped; every other unraisable exception passes on."""

  def __init__(self, previous):
    self.previous = previous

  def __call__(self, unraisable) -> None:
    exc = unraisable.exc_value
    if unraisable.object is None and isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
      return
    self.previous(unraisable)


def _drop_closed_loop_callbacks() -> None:
  if not isinstance(sys.unraisablehook, _DropClosedLoopCallbacks):
    sys.unraisablehook = _DropClosedLoopCallbacks(sys.unraisablehook)


def checkpoint_manager(model_dir: Path, *, track_best: bool, read_only: bool = False) -> ocp.CheckpointManager:
  """Orbax manager in ``model_dir/checkpoints``: one step per epoch; keeps the latest and (``track_best``) the best.

  ``read_only``: open for loading only (creates nothing, removes nothing; nothing is saved through it)."""
  _quiet_orbax_logging()
  _drop_closed_loop_callbacks()
  policies = [ocp_policies.LatestN(n=1)]
  if track_best:
    policies.append(ocp_policies.BestN(get_metric_fn=selection_key, n=1, keep_checkpoints_without_metrics=False))
  options = ocp.CheckpointManagerOptions(
    best_fn=selection_key if track_best else None,
    best_mode="max",
    preservation_policy=ocp_policies.AnyPreservationPolicy(policies),
    enable_async_checkpointing=False,
    create=not read_only,
    cleanup_tmp_directories=not read_only,
  )
  ckpt_dir = (Path(model_dir) / CHECKPOINT_DIR).absolute()
  try:
    return ocp.CheckpointManager(ckpt_dir, options=options, item_names=("state", "history"))
  except Exception as e:  # noqa: BLE001 -- any failure to open is reported as bad input, one line
    raise InputError(f"{ckpt_dir}: cannot open the checkpoint directory ({one_line(e)})") from e


def save_epoch(
  mngr: ocp.CheckpointManager,
  epoch: int,
  state: TrainState,
  records: Sequence[Mapping[str, Any]],
  *,
  metrics: Mapping[str, Any] | None,
) -> None:
  """Checkpoint ``epoch``: the state and the history ``records`` (``metrics``: what ``selection_key`` ranks, None
  without validation); returns when it is on disk."""
  mngr.save(
    epoch,
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(jax.tree_util.tree_map(np.asarray, state.as_dict())),
      history=ocp.args.JsonSave({"epochs": records}),
    ),
    metrics=metrics,
  )
  mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, step: int, template: TrainState) -> tuple[TrainState, dict]:
  """(state, history) of checkpoint ``step``, checked against ``template``'s structure and shapes; a broken or
  foreign checkpoint is a one-line InputError naming the directory."""
  template_tree = jax.tree_util.tree_map(np.asarray, template.as_dict())
  try:
    out = mngr.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template_tree), history=ocp.args.JsonRestore())
    )
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
    raise InputError(
      f"{Path(mngr.directory)}: broken checkpoint at epoch {step} ({one_line(e)}); delete the directory to retrain"
    ) from e
  return state, history


def restore_newest(
  mngr: ocp.CheckpointManager, template: TrainState, *, log_prefix: str = ""
) -> tuple[int, TrainState, dict] | None:
  """(step, state, history) of the newest checkpoint that restores; None when there is none.

  Newer checkpoints that do not restore (truncated or corrupt files) are deleted, and one log line says so: the run
  goes on from the older one and trains the lost epochs again, which end as before (batch orders and dropout keys
  depend only on the seed, the epoch and the step). When no checkpoint restores, the newest one's InputError is
  raised (a foreign or wholly broken checkpoint directory)."""
  broken: list[tuple[int, InputError]] = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      state, history = restore(mngr, step, template)
    except InputError as e:
      broken.append((step, e))
      continue
    if broken:
      for bad, _ in broken:
        mngr.delete(bad)
      logging.warning(
        "%s%s: epoch %s does not restore (%s); resuming from the checkpoint of epoch %d, the later epochs are "
        "trained again",
        log_prefix,
        Path(mngr.directory),
        ", ".join(str(b) for b, _ in broken),
        one_line(broken[0][1].__cause__ or broken[0][1]),
        step,
      )
    return step, state, history
  if broken:
    raise broken[0][1]
  return None
