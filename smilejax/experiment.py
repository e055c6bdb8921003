"""The paper's experiment (realsmilenet.md §6-§8, paper Table 1), fold by fold.

One fold (``run_fold``): the prepared corpus and features (``smilejax.prepare``) -> the subject-independent split
(test = fold k; an inner validation split of the training subjects, drawn with ``config.seed``) -> ``train.fit`` for
RealSmileNet and the three AUDA models, then the two fusion heads on the frozen models' final-branch features ->
milliseconds per video (``smilejax.timing``) -> ``predictions.csv`` and, last, ``fold_result.json``
(``smilejax.workdir``).

All folds (``run_all_folds``): finished folds are skipped, an interrupted fold resumes from its checkpoints, a
failing fold leaves a ``FAILED`` file and the others still run, then ``report.write_report``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from smilejax import constants, fileio, methods, report, runtime, synthetic, timing, train
from smilejax import workdir as wd
from smilejax.data import DATA_DEFAULTS, loading_options
from smilejax.errors import InputError
from smilejax.io import nemo
from smilejax.prepare import Prepared, auda_options, corpus_root, prepare

# Config keys whose change does not invalidate finished folds (they affect no trained model and no accuracy).
RESUME_IGNORED_KEYS: tuple[str, ...] = ("folds", "timing", "name")

# What ``validate_config`` requires of a config's values: (dotted key, type, test, what the test asks). A key the
# config lacks is not checked (older run configs); train.val_fraction and the models' epochs are checked apart.
_ANY = (lambda v: True, "")
_GE0, _GE1, _POS = (lambda v: v >= 0, ">= 0"), (lambda v: v >= 1, ">= 1"), (lambda v: v > 0, "> 0")
_BETA = (lambda v: 0 <= v < 1, "in [0, 1)")
VALUE_CHECKS: tuple[tuple[str, type, tuple[Any, str]], ...] = (
  ("seed", int, _GE0),
  *((f"data.{k}", str, _ANY) for k in ("root", "dataset", "synthetic_dir", "cache_dir")),
  ("data.require_root", bool, _ANY),
  ("data.with_video", bool, _ANY),
  ("data.synthetic_size", str, (lambda v: v in synthetic.CONFIGS, f"one of {', '.join(sorted(synthetic.CONFIGS))}")),
  ("data.synthetic_seed", int, _GE0),
  ("data.synthetic_subjects", int, _GE0),
  ("data.frame_size", int, _GE1),
  ("data.frame_stride", int, _GE0),
  ("data.fps", float, _GE0),
  ("data.max_gap_seconds", float, _GE0),
  ("data.max_failed_fraction", float, (lambda v: 0 <= v <= 1, "in [0, 1]")),
  ("data.max_frame_mismatch", int, _GE0),
  ("data.max_duration_mismatch", float, _GE0),
  ("auda_batch.bucket", int, _GE1),
  ("auda_batch.chunk_size", int, _GE1),
  ("auda_batch.workers", int, _GE1),
  ("train.batch_size", int, _GE1),
  ("train.eval_batch_size", int, _GE1),
  ("train.learning_rate", float, _POS),
  ("train.adam_b1", float, _BETA),
  ("train.adam_b2", float, _BETA),
  ("train.adam_eps", float, _POS),
  ("train.l2_weight", float, _GE0),
  ("train.epochs", int, _GE0),
  ("train.bucket", int, _GE1),
  ("train.checkpoint_interval_s", float, _GE0),
  ("train.data_parallel", int, _GE0),
  ("timing.enabled", bool, _ANY),
  ("timing.warmup", bool, _ANY),
  ("timing.max_videos", int, _GE0),
  ("timing.auda_bucket", int, _GE1),
)
_TYPE_NAMES = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
_MISSING = object()


# ------------------------------------------------------------------------------------------------ config checks


def run_methods(config: Any) -> tuple[str, ...]:
  """The methods a run trains, in Table 1 order: ``config.methods`` (default all six).

  A dataset without videos (``data.with_video = False``, e.g. the AUDA replication data) has only the AUDA methods
  and their fusion. Raises InputError for an unknown method, a fusion without its members, or a video method
  without videos.
  """
  wanted = tuple(str(m) for m in (config.get("methods", None) or methods.METHODS))
  unknown = [m for m in wanted if m not in methods.METHODS]
  if unknown:
    raise InputError(f"config methods: unknown {unknown} (known: {', '.join(methods.METHODS)})")
  run = tuple(m for m in methods.METHODS if m in wanted)
  for m in run:
    if m in methods.FUSION_METHODS:
      missing = [k for k in config.models[m].members if k not in run]
      if missing:
        raise InputError(f"config methods: {m} needs its members {missing} in the run")
  if not bool(config.data.get("with_video", True)) and "realsmilenet" in run:
    raise InputError(
      "config methods: realsmilenet needs videos, but data.with_video is False (configs/auda_package.py "
      "runs the AUDA methods only)"
    )
  return run


def _lookup(config: Any, key: str) -> Any:
  node = config
  for part in key.split("."):
    if not hasattr(node, "get") or part not in node:
      return _MISSING
    node = node[part]
  return node


def _check_value(key: str, value: Any, kind: type, test: Any, what: str) -> None:
  if kind is bool:
    ok = isinstance(value, (bool, np.bool_))
  elif kind is int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
  elif kind is float:
    ok = (
      isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    )
  else:
    ok = isinstance(value, kind)
  if not ok or not test(value):
    must = what if kind is str and what else f"{_TYPE_NAMES[kind]}{' ' + what if what else ''}"
    raise InputError(f"config {key}: must be {must}, got {value!r}")


def check_values(config: Any) -> None:
  """The types and ranges of ``VALUE_CHECKS``, train.val_fraction (selection "val") and the epochs of every model
  the run trains: InputError "config <key>: must be ..., got <value>" for the first bad one."""
  for key, kind, (test, what) in VALUE_CHECKS:
    value = _lookup(config, key)
    if value is not _MISSING:
      _check_value(key, value, kind, test, what)
  if str(config.train.get("selection", "val")) == "val" and "val_fraction" in config.train:
    _check_value("train.val_fraction", config.train.val_fraction, float, lambda v: 0 < v < 1, "in (0, 1)")
  if not int(config.train.get("epochs", 0) or 0) > 0:
    for m in run_methods(config):
      _check_value(f"models.{m}.epochs", config.models[m].get("epochs", 0), int, *_GE1)


def validate_config(config: Any) -> None:
  """Errors a run would meet late, reported before anything is written (one line each)."""
  if not str(config.data.root).strip() and bool(config.data.get("require_root", False)):
    raise InputError(f"config {config.get('name', '')!r} needs the corpus folder: --config.data.root=<folder>")
  if str(config.train.selection) not in train.SELECTIONS:
    raise InputError(f"config train.selection must be one of {train.SELECTIONS}, got {config.train.selection!r}")
  for m in methods.METHODS:
    if m not in config.models:
      raise InputError(f"config has no models.{m}")
  run_methods(config)
  check_values(config)
  auda_options(config)  # unknown or bad AUDA options raise here
  loading_options(config.data)  # a bad data.on_bad_video or data.au_source raises here


def check_inputs(config: Any, folds: Sequence[int]) -> None:
  """Fail fast, before any loading or training: the config, the corpus folder and the requested fold numbers
  (InputError, one line, naming the folder or fold list). The synthetic corpus is generated here if absent."""
  validate_config(config)
  root, _ = corpus_root(config)
  fold_folder = root / constants.FOLDS_DIR
  fold_lists = nemo.read_fold_lists(fold_folder if fold_folder.is_dir() else None)
  unknown = sorted(set(int(k) for k in folds) - set(fold_lists))
  if unknown:
    where = fold_folder if fold_folder.is_dir() else "the official UvA-NEMO lists (smilejax/data/folds)"
    raise InputError(f"{where}: no fold {','.join(map(str, unknown))} (folds {min(fold_lists)}-{max(fold_lists)})")


def config_for_compare(config_json: Mapping[str, Any]) -> dict:
  """The part of a run config that decides its results (what a resumed run must share)."""
  out = {k: v for k, v in config_json.items() if k not in RESUME_IGNORED_KEYS}
  if isinstance(out.get("data"), Mapping):  # data keys added later: at their defaults they equal their absence
    defaults = json.loads(json.dumps(DATA_DEFAULTS))
    out["data"] = {k: v for k, v in out["data"].items() if k not in defaults or v != defaults[k]}
  if isinstance(out.get("train"), Mapping):
    out["train"] = {k: v for k, v in out["train"].items() if k not in train.RESULT_NEUTRAL_TRAIN_KEYS}
  return out


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
  if isinstance(a, Mapping) and isinstance(b, Mapping):
    return [d for k in sorted(set(a) | set(b)) for d in _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")]
  return [] if a == b else [prefix.rstrip(".")]


def _has_results(workdir: Path) -> bool:
  """Whether ``workdir`` holds what a run would lose: a finished fold or a model's checkpoint."""
  for fdir in workdir.glob("fold_*"):
    if (fdir / wd.FOLD_RESULT).is_file():
      return True
    if any(p.name.isdigit() for p in fdir.glob(f"*/{train.checkpoints.CHECKPOINT_DIR}/*")):
      return True
  return False


def check_workdir(
  config: Any, workdir: str | os.PathLike, *, overwrite: bool = False, folds: Sequence[int] = ()
) -> None:
  """Write ``workdir/config.json``; refuse a workdir made with a config that differs in a way that matters
  (anything but ``RESUME_IGNORED_KEYS``) unless ``overwrite`` (which then deletes the old folds and reports).
  The stored ``folds`` become the union of the old and the requested folds (what the report expects).

  The config, the corpus and ``folds`` are checked first (``check_inputs``): bad input writes nothing. A workdir
  whose earlier run left no results (no finished fold, no checkpoint: e.g. it failed on a bad value) is not
  protected: its config.json is replaced."""
  workdir = Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise InputError(f"{workdir}: not a folder (the workdir must be a folder or not exist yet)")
  check_inputs(config, folds)
  workdir.mkdir(parents=True, exist_ok=True)
  new = json.loads(config.to_json_best_effort(sort_keys=True))
  path = workdir / wd.CONFIG
  old = None
  if path.exists() and _has_results(workdir):
    try:
      old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      if not overwrite:
        raise InputError(f"{path}: unreadable ({e}); use --overwrite to start afresh") from e
  if old is not None and config_for_compare(old) != config_for_compare(new):
    diff = _diff_keys(config_for_compare(old), config_for_compare(new))
    if not overwrite:
      raise InputError(
        f"{workdir}: was run with another configuration (differs in {', '.join(diff[:6])}); use "
        f"--overwrite to discard its results, or another --workdir"
      )
    logging.warning(
      "%s: --overwrite: discarding results of another configuration (differs in %s)", workdir, ", ".join(diff[:6])
    )
    for p in workdir.iterdir():
      if p.is_dir() and p.name.startswith("fold_"):
        shutil.rmtree(p)
    old = None
  if folds:
    prev = [int(k) for k in (old or {}).get("folds", []) or []]
    new["folds"] = sorted(set(prev) | {int(k) for k in folds})
  fileio.write_json(path, new)


# ------------------------------------------------------------------------------------------------------ one fold


def model_seed(config: Any, fold: int, method: str) -> int:
  """Initialisation / shuffling / dropout seed of one model on one fold (fixed by config.seed)."""
  return int(config.seed) * 100_000 + int(fold) * 100 + methods.method_index(method)


def fold_split(prepared: Prepared, config: Any, fold: int):
  """The fold's split; with selection "fixed" there is no validation split (all training subjects train)."""
  fixed = str(config.train.selection) == "fixed"
  return prepared.corpus.split(
    fold, val_fraction=0.0 if fixed else float(config.train.val_fraction), seed=int(config.seed)
  )


def split_examples(prepared: Prepared, method: str, ids: Sequence[str]) -> train.Examples | None:
  """Inputs of ``ids`` for a base model: a list of sequences (frames, frame-wise) or a stacked [N, D] array."""
  if not ids:
    return None
  src = prepared.inputs(methods.BY_ID[method].inputs)
  x = [src[v] for v in ids]
  if method in ("auwise", "crossau"):
    x = np.stack(x)
  return train.Examples(x, prepared.corpus.labels(ids), tuple(ids))


def fusion_examples(
  prepared: Prepared, method: str, members: Sequence[str], split: Any, fitted: Mapping[str, train.FitResult]
) -> dict[str, train.Examples | None]:
  """A late fusion's inputs: the members' final-branch features (eval mode, selected epoch) concatenated in
  ``members`` order, per split (realsmilenet.md §7)."""
  missing = [m for m in members if m not in fitted]
  if missing:
    raise ValueError(f"{method}: members {missing} not trained")
  out = {}
  for name, ids in (("train", split.train_ids), ("val", split.val_ids), ("test", split.test_ids)):
    if not ids:
      out[name] = None
      continue
    for m in members:  # the members' feature rows follow the split's id order (fit keeps the Examples order)
      if len(fitted[m].features[name]) != len(ids):
        raise ValueError(f"{method}: {m} has {len(fitted[m].features[name])} {name} feature rows, the split {len(ids)}")
    x = np.concatenate([fitted[m].features[name] for m in members], axis=1).astype(np.float32)
    out[name] = train.Examples(x, prepared.corpus.labels(ids), tuple(ids))
  return out


def fit_method(
  config: Any,
  prepared: Prepared,
  fold: int,
  method: str,
  split: Any,
  workdir: str | os.PathLike,
  fitted: Mapping[str, train.FitResult] | None = None,
) -> train.FitResult:
  """Train (or resume, or reload) one method on one fold. A fusion needs its members' FitResults in ``fitted``."""
  mcfg = config.models[method]
  kw = dict(seed=model_seed(config, fold, method), log_prefix=f"fold {fold}: ")
  model_dir = wd.fold_dir(workdir, fold) / method
  if method in methods.FUSION_METHODS:
    data = fusion_examples(prepared, method, tuple(mcfg.members), split, fitted or {})
    return train.fit(method, mcfg, config.train, data, model_dir, **kw)
  data = {
    name: split_examples(prepared, method, ids)
    for name, ids in (("train", split.train_ids), ("val", split.val_ids), ("test", split.test_ids))
  }
  splits = tuple(k for k in ("train", "val", "test") if data[k] is not None)
  return train.fit(method, mcfg, config.train, data, model_dir, feature_splits=splits, **kw)


def _predictions_csv(
  prepared: Prepared, fold: int, test_ids: Sequence[str], results: Mapping[str, train.FitResult]
) -> str:
  run = tuple(m for m in methods.METHODS if m in results)
  lines = [",".join(["id", "subject", "label", "fold", *run])]
  for i, vid in enumerate(test_ids):
    v = prepared.corpus.videos[vid]
    probs = (f"{float(results[m].test_prob[i]):.6f}" for m in run)
    lines.append(",".join([vid, v.subject, str(int(v.label)), str(fold), *probs]))
  return "\n".join(lines) + "\n"


def run_fold(config: Any, workdir: str | os.PathLike, fold: int) -> dict:
  """Train and evaluate every method on fold ``fold``; write predictions.csv and fold_result.json (last)."""
  t0 = time.time()
  fold = int(fold)
  check_inputs(config, [fold])  # also refuses a fold the corpus's fold lists do not have
  run = run_methods(config)
  prepared = prepare(config)
  fdir = wd.fold_dir(workdir, fold)
  fdir.mkdir(parents=True, exist_ok=True)
  split = fold_split(prepared, config, fold)
  logging.info(
    "fold %d: %d train, %d val, %d test videos", fold, len(split.train_ids), len(split.val_ids), len(split.test_ids)
  )
  results: dict[str, train.FitResult] = {}
  for i, method in enumerate(run):
    logging.info("fold %d: method %d/%d %s", fold, i + 1, len(run), methods.METHOD_NAMES[method])
    t_fit = time.time()
    results[method] = fit_method(config, prepared, fold, method, split, workdir, fitted=results)
    logging.info("fold %d: %s finished in %.1f s", fold, method, time.time() - t_fit)
  t_timing = time.time()
  ms = timing.time_methods(config, prepared, results, split.test_ids, run)
  logging.info(
    "fold %d: per-video timing took %.1f s: %s",
    fold,
    time.time() - t_timing,
    ", ".join(f"{m} {v:.1f} ms" for m, v in ms.items()),
  )
  test_ids = list(split.test_ids)
  for m in run:
    if tuple(results[m].test_ids) != tuple(test_ids):
      raise RuntimeError(f"{m}: test ids out of order")
  predictions = _predictions_csv(prepared, fold, test_ids, results)
  result = {
    "fold": fold,
    "accuracy": {m: float(results[m].test_acc) for m in run},
    "ms_per_video": {m: (None if math.isnan(ms[m]) else round(float(ms[m]), 3)) for m in run},
    "n_test": len(split.test_ids),
    "n_train": len(split.train_ids),
    "n_val": len(split.val_ids),
    "no_smile_detected": int(sum(prepared.no_smile[v] for v in test_ids)),
    "selected_epoch": {m: int(results[m].selected_epoch) for m in run},
    "backend": runtime.backend_name(),
    "dataset": prepared.dataset,
    "seed": int(config.seed),
    "wall_s": round(time.time() - t0, 1),
  }
  au_source = str(config.data.get("au_source", DATA_DEFAULTS["au_source"]))
  if au_source != DATA_DEFAULTS["au_source"]:  # the AUs the models were trained on (OpenFace files keep their keys)
    result["au_source"] = au_source
  skipped = prepared.corpus.skipped  # data.on_bad_video = "skip": never dropped silently
  if skipped:
    result["skipped_videos"] = dict(skipped)
    result["n_skipped_test"] = sum(v in skipped for v in prepared.corpus.folds.get(fold, ()))
  # A finished fold's files stay as they are until the new ones are complete (a failed rerun changes nothing); then
  # fold_result.json (its presence = finished) goes, predictions.csv is replaced, and fold_result.json comes last.
  (fdir / wd.FOLD_RESULT).unlink(missing_ok=True)
  fileio.write_text(fdir / wd.PREDICTIONS, predictions)
  fileio.write_json(fdir / wd.FOLD_RESULT, result)
  (fdir / wd.FAILED).unlink(missing_ok=True)
  logging.info(
    "fold %d done in %.0f s: %s",
    fold,
    result["wall_s"],
    ", ".join(f"{m} {100 * a:.1f}%" for m, a in result["accuracy"].items()),
  )
  return result


def format_fold_result(result: Mapping[str, Any]) -> str:
  """A few lines for the terminal: accuracy and ms per video of each method on one fold."""
  lines = [f"fold {result['fold']} ({result['n_test']} test videos, {result['wall_s']:.0f} s):"]
  for m in (m for m in methods.METHODS if m in result["accuracy"]):
    ms = result["ms_per_video"].get(m)
    lines.append(
      f"  {methods.METHOD_NAMES[m]:<26} {100 * result['accuracy'][m]:5.1f} %"
      + (f"  {ms:8.1f} ms/video" if ms is not None else "")
    )
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ all folds


@dataclasses.dataclass
class RunSummary:
  done: list[int]
  skipped: list[int]
  failed: dict[int, str]
  table: str | None

  @property
  def ok(self) -> bool:
    return not self.failed


def run_all_folds(
  config: Any, workdir: str | os.PathLike, folds: Sequence[int] | None = None, *, overwrite: bool = False
) -> RunSummary:
  """Run every fold of ``folds`` (default ``config.folds``), skipping finished ones; report at the end."""
  workdir = Path(workdir)
  folds = [int(k) for k in (folds if folds else config.folds)]
  check_workdir(config, workdir, overwrite=overwrite, folds=folds)  # bad input stops the run here, not once per fold
  done, skipped, failed = [], [], {}
  t0 = time.time()
  for i, fold in enumerate(folds):
    fdir = wd.fold_dir(workdir, fold)
    if wd.is_finished(workdir, fold):
      logging.info("fold %d: already finished (%s), skipped", fold, fdir / wd.FOLD_RESULT)
      skipped.append(fold)
      continue
    try:
      run_fold(config, workdir, fold)
      done.append(fold)
    except Exception as e:  # noqa: BLE001 -- a failing fold must not stop the others
      reason = f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]
      fileio.write_text(fdir / wd.FAILED, reason + "\n")
      logging.error("fold %d FAILED: %s\n%s", fold, reason, traceback.format_exc())
      failed[fold] = reason
    n_left = sum(1 for k in folds[i + 1 :] if not wd.is_finished(workdir, k))
    if done:
      eta = (time.time() - t0) / len(done) * n_left
      logging.info("run_all_folds: %d/%d folds processed, ETA %.0f s", i + 1, len(folds), eta)
  table = report.write_report(workdir)
  return RunSummary(done=done, skipped=skipped, failed=failed, table=table)
