"""The training options a run needs (realsmilenet.md §5-§6); their values live in configs/__init__.py only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smilejax.fileio import jsonable

# Keys of a train config that ``fit`` uses (and writes to config.json); configs/__init__.py holds their values.
TRAIN_KEYS = (
  "batch_size",
  "eval_batch_size",
  "learning_rate",
  "adam_b1",
  "adam_b2",
  "adam_eps",
  "l2_weight",
  "selection",
  "epochs",
  "bucket",
  "checkpoint_interval_s",
  "data_parallel",
)
SELECTIONS = ("val", "fixed")
# Options that cannot change a result, so a run may be resumed with other values: ``data_parallel`` changes only the
# float32 summation order (``smilejax.train.steps``), as another core count does.
RESULT_NEUTRAL_TRAIN_KEYS = ("checkpoint_interval_s", "data_parallel")


def require_keys(train_cfg: Mapping[str, Any], keys: Iterable[str], *, caller: str) -> None:
  """ValueError naming every key of ``keys`` that ``train_cfg`` lacks."""
  missing = [k for k in keys if k not in train_cfg]
  if missing:
    raise ValueError(
      f"{caller}: the train config lacks {', '.join(missing)} (configs/__init__.py, paper_config, "
      f"holds every training option)"
    )


def train_options(train_cfg: Any) -> dict[str, Any]:
  """The ``TRAIN_KEYS`` of ``train_cfg`` (a mapping or ConfigDict) as plain JSON values, checked."""
  cfg = jsonable(train_cfg)
  require_keys(cfg, TRAIN_KEYS, caller="fit")
  cfg = {k: cfg[k] for k in TRAIN_KEYS}
  if cfg["selection"] not in SELECTIONS:
    raise ValueError(f"train.selection must be one of {SELECTIONS}, got {cfg['selection']!r}")
  return cfg


def resolve_epochs(train_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any]) -> int:
  """``train.epochs`` when > 0 (an override for every model), otherwise the model's own ``epochs``."""
  override = int(train_cfg.get("epochs", 0) or 0)
  epochs = override if override > 0 else int(model_cfg.get("epochs", 0) or 0)
  if epochs <= 0:
    raise ValueError("no epochs configured: set the model's `epochs` or train.epochs > 0")
  return epochs
