"""A training run: ``fit`` trains one model on one fold and tests its selected epoch once; ``load_trained`` loads it
back (realsmilenet.md §4-§7).

Selection "val" trains on the training subjects minus an inner validation split, evaluates that split after every
epoch and picks the epoch by ``checkpoints.select_epoch``; "fixed" trains on all training subjects and keeps the last
epoch. The test split is evaluated once, at the end, with the selected weights: never before.

A run whose checkpoints exist resumes after its latest saved epoch; batch orders and dropout keys depend only on the
seed, the epoch and the step, so the resumed run ends bit for bit as the uninterrupted one.

Files in ``model_dir``: ``config.json`` (model, training options, epochs, seed, input kind and shape),
``metrics.jsonl`` (one JSON per epoch: epoch, step, train_loss, val_loss, val_acc, devices, seconds),
``checkpoints/`` (``checkpoints.py``), ``standardizer.npz`` (standardised models: per-feature mean and std of the
training split).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
from absl import logging

from smilejax.errors import InputError
from smilejax.fileio import atomic_write, jsonable, write_json
from smilejax.train.checkpoints import (
  CHECKPOINT_DIR,
  checkpoint_manager,
  one_line,
  restore,
  restore_newest,
  save_epoch,
  select_epoch,
)
from smilejax.train.evaluate import accuracy_and_loss, predict, predict_batch, sigmoid
from smilejax.train.examples import Examples, Standardizer, as_examples, epoch_order, take_batch
from smilejax.train.options import RESULT_NEUTRAL_TRAIN_KEYS, resolve_epochs, train_options
from smilejax.train.steps import Steps, TrainState, get_steps, init_state


@dataclasses.dataclass
class FitResult:
  """Outcome of ``fit`` for one model on one fold."""

  method: str
  arch: str
  selected_epoch: int
  epochs: int
  test_ids: tuple[str, ...]
  test_prob: np.ndarray  # P(spontaneous) per test video, ``test_ids`` order
  test_acc: float
  val_acc: float | None
  val_loss: float | None
  history: list[dict]
  variables: Any  # {'params', ['batch_stats']} of the selected epoch
  module: Any
  steps: Steps
  standardizer: Standardizer | None
  model_dir: Path
  features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # split -> [N, F], eval mode
  train_seconds: float = 0.0

  def predict(self, x: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    return predict_batch(self.steps, self.variables, self.standardizer, x, lengths)


def fit(
  model_name: str,
  model_cfg: Any,
  train_cfg: Any,
  data: Mapping[str, Any],
  model_dir: str | Path,
  *,
  seed: int = 0,
  log_prefix: str = "",
  feature_splits: Sequence[str] = (),
  epoch_callback: Callable[[int, dict], None] | None = None,
) -> FitResult:
  """Train one model on one fold and test the selected epoch once.

  model_name: the method key used in logs and errors (e.g. "realsmilenet", "fusion_all"); the architecture is
    ``model_cfg.name`` (default: ``model_name``), built by ``smilejax.models.build`` from ``model_cfg``'s fields.
  model_cfg: the model's options plus ``epochs`` and ``standardize`` (bool: per-feature standardisation).
  train_cfg: every key of ``options.TRAIN_KEYS`` (configs/__init__.py's ``train``); a missing one is a ValueError.
  data: {"train": Examples, "val": Examples or None, "test": Examples} (or mappings with x, y, ids).
    With selection "val" the validation split must be non-empty; with "fixed" it is ignored.
  model_dir: the model's folder (module docstring). A run whose checkpoints exist resumes from its latest epoch; a
    folder holding checkpoints of a run with another configuration is refused.
  feature_splits: splits whose final-branch features (eval mode, selected epoch) are returned in
    ``FitResult.features`` (what late fusion needs).
  epoch_callback: called as ``epoch_callback(epoch, record)`` after each epoch is saved (tests use it to interrupt).

  Checkpoints: with ``train_cfg.checkpoint_interval_s == 0`` every epoch is saved. With a positive interval an epoch
  is saved when it is a new best (selection "val"), the last one, or at least that many seconds after the previous
  save (a save can cost more than a whole epoch of the small models). Either way the best epoch's weights are on disk
  and a resumed run repeats the unsaved epochs bit for bit, so the result does not change.
  """
  t_start = time.time()
  model_cfg_d = jsonable(model_cfg) or {}
  arch = model_cfg_d.get("name", model_name)
  tcfg = train_options(train_cfg)
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
  run_config = {
    "method": model_name,
    "arch": arch,
    "model": model_cfg_d,
    "train": tcfg,
    "epochs": epochs,
    "seed": int(seed),
    "input": "sequence" if train.sequential else "vector",
    "input_shape": input_shape,
    "n_train": len(train),
    "n_val": len(val) if val is not None else 0,
    "n_test": len(test),
  }
  _check_or_write_config(model_dir / "config.json", run_config)

  standardizer = None
  if model_cfg_d.get("standardize", False):
    standardizer = Standardizer.fit(train.x)
    standardizer.save(model_dir / "standardizer.npz")
    train, val, test = (
      None if ex is None else Examples(standardizer.apply(ex.x), ex.y, ex.ids) for ex in (train, val, test)
    )

  steps = get_steps(arch, model_cfg_d, tcfg)
  template = init_state(steps, _example_input(run_config), seed=seed)

  mngr = checkpoint_manager(model_dir, track_best=selection == "val")
  try:  # closed on every exit: an open manager left to the interpreter's shutdown ends in asyncio tracebacks
    latest = mngr.latest_step()
    if latest is not None and latest > epochs:
      raise InputError(f"{mngr.directory}: holds epoch {latest} > the configured {epochs} epochs")
    state, history, done = template, {"epochs": []}, 0
    newest = restore_newest(mngr, template, log_prefix=log_prefix)
    if newest is not None:
      done, state, history = newest
      logging.info("%s%s: resuming after epoch %d of %d", log_prefix, model_name, done, epochs)
    records = list(history["epochs"])[:done]
    _rewrite_metrics(model_dir / "metrics.jsonl", records)

    interval = float(tcfg["checkpoint_interval_s"])
    last_save = time.time()
    for epoch in range(len(records) + 1, epochs + 1):
      t0 = time.time()
      order = epoch_order(len(train), batch_size=bsz, seed=seed, epoch=epoch - 1)
      state, losses = _train_epoch(model_name, steps, state, train, order, bucket=bucket, epoch=epoch)
      record = {
        "epoch": epoch,
        "step": int(state.step),
        "train_loss": float(np.mean(losses)),
        "val_loss": None,
        "val_acc": None,
        "devices": 1 if steps.mesh is None else steps.mesh.size,
      }
      if val is not None:
        vacc, vloss = accuracy_and_loss(
          predict(steps, steps.on_one_device(state.variables), val, batch_size=ebsz, bucket=bucket), val.y
        )
        record.update(val_loss=vloss, val_acc=vacc)
      record["seconds"] = round(time.time() - t0, 3)
      records.append(record)
      new_best = val is not None and select_epoch(records, selection) == epoch
      if interval <= 0 or new_best or epoch == epochs or time.time() - last_save >= interval:
        metrics = {k: record[k] for k in ("epoch", "val_acc", "val_loss")} if val is not None else None
        save_epoch(mngr, epoch, state, records, metrics=metrics)
        last_save = time.time()
      with open(model_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
      eta = np.mean([r["seconds"] for r in records[-3:]]) * (epochs - epoch)
      logging.info(
        "%s%s epoch %d/%d: train_loss %.4f%s (%.1f s, ETA %.0f s)",
        log_prefix,
        model_name,
        epoch,
        epochs,
        record["train_loss"],
        f", val_loss {record['val_loss']:.4f} val_acc {record['val_acc']:.3f}" if val is not None else "",
        record["seconds"],
        eta,
      )
      if epoch_callback is not None:
        epoch_callback(epoch, record)

    # Selection (never on test data), then one test evaluation.
    selected = select_epoch(records, selection)
    if selected != len(records):  # the weights in memory are those of the last epoch
      state, _ = restore(mngr, selected, template)
  finally:
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
  logging.info(
    "%s%s: selected epoch %d of %d%s; test accuracy %.3f",
    log_prefix,
    model_name,
    selected,
    epochs,
    f" (val_acc {sel['val_acc']:.3f})" if val is not None else "",
    test_acc,
  )
  return FitResult(
    method=model_name,
    arch=arch,
    selected_epoch=selected,
    epochs=epochs,
    test_ids=test.ids,
    test_prob=sigmoid(test_logits),
    test_acc=test_acc,
    val_acc=sel["val_acc"],
    val_loss=sel["val_loss"],
    history=records,
    variables=variables,
    module=steps.module,
    steps=steps,
    standardizer=standardizer,
    model_dir=model_dir,
    features=feats,
    train_seconds=time.time() - t_start,
  )


def _train_epoch(
  model_name: str, steps: Steps, state: TrainState, train: Examples, order: np.ndarray, *, bucket: int, epoch: int
) -> tuple[TrainState, list[float]]:
  """One training step per row of ``order`` (example weights all 1); a non-finite loss aborts the run."""
  train_y = train.y.astype(np.float32)
  ones = np.ones(order.shape[1], np.float32)
  losses = []
  for idx in order:
    x, lengths = take_batch(train, idx, bucket=bucket)
    state, m = steps.train_step(state, x, lengths, train_y[idx], ones)
    loss = float(m["loss"])
    if not math.isfinite(loss):
      raise FloatingPointError(
        f"{model_name}: non-finite training loss {loss} at step {int(state.step)} (epoch {epoch}); aborting"
      )
    losses.append(loss)
  return state, losses


def _comparable(run_config: Mapping[str, Any]) -> dict:
  out = json.loads(json.dumps(run_config))
  for k in RESULT_NEUTRAL_TRAIN_KEYS:
    out.get("train", {}).pop(k, None)
  return out


def _check_or_write_config(path: Path, run_config: dict) -> None:
  """Write ``config.json``, or refuse a folder whose checkpointed run differs in anything but
  ``RESULT_NEUTRAL_TRAIN_KEYS``. A folder without a checkpoint holds nothing to lose (e.g. its run failed on a bad
  value before the first epoch was saved): its config.json is replaced."""
  ckpt_dir = path.parent / CHECKPOINT_DIR
  if path.exists() and ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir()):
    try:
      old = _comparable(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
      raise InputError(f"{path}: unreadable run configuration ({one_line(e)})") from e
    new = _comparable(run_config)
    if old != new:
      diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      raise InputError(
        f"{path.parent}: holds a run with another configuration (differs in {', '.join(diff)}); "
        f"use another workdir or delete it"
      )
    return
  write_json(path, run_config)


def _rewrite_metrics(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
  """metrics.jsonl := the checkpointed history (drops lines of an epoch whose checkpoint was never completed)."""
  atomic_write(path, lambda f: f.writelines(json.dumps(dict(r)) + "\n" for r in records))


def _example_input(run_config: Mapping[str, Any]) -> np.ndarray:
  """A zero example with the run's input shape (one time step for sequences): parameter shapes depend on nothing
  else (no parameter depends on T)."""
  shape = tuple(int(d) for d in run_config["input_shape"])
  return np.zeros(((1,) + shape) if run_config["input"] == "sequence" else shape, np.float32)


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
    return predict_batch(self.steps, self.variables, self.standardizer, x, lengths)


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
    raise InputError(f"{cfg_path}: unreadable run configuration ({one_line(e)})") from e
  steps = get_steps(arch, model_cfg, tcfg)
  standardizer = None
  if model_cfg.get("standardize", False):
    standardizer = Standardizer.load(model_dir / "standardizer.npz")
  template = init_state(steps, _example_input(cfg), seed=0)  # shapes only; values come from the checkpoint
  mngr = checkpoint_manager(model_dir, track_best=tcfg["selection"] == "val", read_only=True)
  try:
    latest = mngr.latest_step()
    if latest is None:
      raise InputError(f"{mngr.directory}: no checkpoint")
    state, history = restore(mngr, latest, template)
    records = history["epochs"]
    selected = select_epoch(records, tcfg["selection"])
    if selected != latest:
      state, _ = restore(mngr, selected, template)
  finally:
    mngr.close()
  return TrainedModel(
    module=steps.module,
    variables=state.variables,
    standardizer=standardizer,
    config=cfg,
    selected_epoch=selected,
    steps=steps,
  )
