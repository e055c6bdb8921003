"""A finished (or partly finished) experiment, read from its workdir's files alone (``smilejax.workdir``), so a
notebook can redraw the table and the figures without retraining. A fold counts as finished only when its
fold_result.json exists.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from absl import logging

from smilejax import constants, data
from smilejax import methods as methods_lib
from smilejax import workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class Results:
  """Everything the report needs, read from a workdir.

  accuracy_pct / ms_per_video: DataFrames indexed by method key (fixed order), one column per expected fold
  (official list number), NaN where the fold is missing/failed or the method absent from its fold_result.json.
  """

  workdir: Path
  methods: tuple[str, ...]
  method_names: dict[str, str]
  folds: tuple[int, ...]  # expected folds (table columns)
  finished: tuple[int, ...]  # folds with fold_result.json
  failed: dict[int, str]  # fold -> FAILED message (only folds without fold_result.json)
  missing: tuple[int, ...]  # expected folds not finished (failed ones included)
  accuracy_pct: pd.DataFrame
  ms_per_video: pd.DataFrame
  fold_results: dict[int, dict[str, Any]]
  config: dict[str, Any]
  dataset: str
  backends: tuple[str, ...]
  seed: int | None
  # Videos left out as bad input (data.on_bad_video = "skip"): id -> reason, from the finished folds' results.
  skipped: dict[str, str] = dataclasses.field(default_factory=dict)

  def summary(self, method: str) -> tuple[float, float, int]:
    """(mean, sample std ddof=1, n) of the method's accuracy over the folds it finished; std NaN if n < 2."""
    return _mean_std(self.accuracy_pct.loc[method].to_numpy(dtype=float))

  def no_smile_detected(self) -> dict[int, int | None]:
    """Per expected fold: no_smile_detected count from fold_result.json (None where not finished)."""
    out: dict[int, int | None] = {}
    for k in self.folds:
      r = self.fold_results.get(k)
      out[k] = None if r is None or r.get("no_smile_detected") is None else int(r["no_smile_detected"])
    return out


def _mean_std(values: np.ndarray) -> tuple[float, float, int]:
  v = values[np.isfinite(values)]
  n = int(v.size)
  if n == 0:
    return math.nan, math.nan, 0
  mean = float(v.mean())
  std = float(v.std(ddof=1)) if n >= 2 else math.nan
  return mean, std, n


def _read_json(path: Path) -> dict[str, Any]:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _find_key(config: Mapping[str, Any], key: str) -> Any:
  """First value of `key` in a nested config dict (depth-first, top level first), else None."""
  if key in config:
    return config[key]
  for v in config.values():
    if isinstance(v, Mapping):
      found = _find_key(v, key)
      if found is not None:
        return found
  return None


def _expected_folds(config: Mapping[str, Any], present: Sequence[int]) -> tuple[int, ...]:
  """The folds the run is meant to cover: config "folds" (a list, or a count) if given, else 1..10.

  Fold directories present on disk beyond that set are added, so nothing that finished is hidden.
  """
  spec = _find_key(config, "folds")
  if isinstance(spec, bool) or spec is None:
    folds = set(range(1, constants.NUM_FOLDS + 1))
  elif isinstance(spec, int):
    folds = set(range(1, spec + 1))
  elif isinstance(spec, (list, tuple)) and all(isinstance(k, int) and not isinstance(k, bool) for k in spec):
    folds = set(spec) if spec else set(range(1, constants.NUM_FOLDS + 1))
  else:  # e.g. a fold-list folder path under the same key: not a fold selection
    folds = set(range(1, constants.NUM_FOLDS + 1))
  return tuple(sorted(folds | set(present)))


def _accuracy_pct(value: Any) -> float:
  """fold_result.json stores accuracy as a fraction in [0, 1]; values above 1 are taken as already in %."""
  if value is None:
    return math.nan
  x = float(value)
  if not math.isfinite(x):
    return math.nan
  return x * 100.0 if x <= 1.0 else x


def load_results(workdir: str | os.PathLike, *, folds: Sequence[int] | None = None) -> Results:
  """Read every fold_XX/fold_result.json (and FAILED markers) of `workdir`.

  `folds` overrides the expected fold list (default: config.json "folds", else 1..10). A fold counts as finished
  only when its fold_result.json exists (the experiment writes it last, atomically).
  """
  workdir = Path(workdir)
  if not workdir.is_dir():
    raise FileNotFoundError(f"{workdir}: workdir does not exist")
  methods, names = methods_lib.METHODS, dict(methods_lib.METHOD_NAMES)
  config_path = workdir / workdir_lib.CONFIG
  config = _read_json(config_path) if config_path.is_file() else {}
  if config.get("methods"):  # a run of some methods only (e.g. the AUDA replication data: no videos)
    methods = tuple(m for m in methods if m in set(config["methods"]))

  present = workdir_lib.folds_present(workdir)
  expected = tuple(sorted(set(folds))) if folds is not None else _expected_folds(config, present)

  fold_results: dict[int, dict[str, Any]] = {}
  failed: dict[int, str] = {}
  for k in expected:
    d = workdir_lib.fold_dir(workdir, k)
    res_path = d / workdir_lib.FOLD_RESULT
    if res_path.is_file():
      fold_results[k] = _read_json(res_path)
    elif (d / workdir_lib.FAILED).is_file():
      lines = (d / workdir_lib.FAILED).read_text(encoding="utf-8").strip().splitlines()
      failed[k] = lines[0].strip() if lines else "(no reason given)"

  acc = pd.DataFrame(np.nan, index=list(methods), columns=list(expected), dtype=float)
  ms = pd.DataFrame(np.nan, index=list(methods), columns=list(expected), dtype=float)
  for k, r in fold_results.items():
    for m in methods:
      acc.loc[m, k] = _accuracy_pct((r.get("accuracy") or {}).get(m))
      v = (r.get("ms_per_video") or {}).get(m)
      ms.loc[m, k] = float(v) if v is not None else math.nan
    extra = set(r.get("accuracy") or {}) - set(methods)
    if extra:
      logging.warning("fold %d: fold_result.json has unknown methods %s (ignored)", k, sorted(extra))

  finished = tuple(sorted(fold_results))
  dataset = _first_of(fold_results, "dataset") or _find_key(config, "dataset")
  if not dataset:  # no finished fold and no name in the config: the rule the run itself follows
    dataset = data.dataset_name(config["data"]) if isinstance(config.get("data"), Mapping) else "unknown"
  seed = _first_of(fold_results, "seed")
  if seed is None:
    seed = _find_key(config, "seed")
  backends = tuple(sorted({str(r["backend"]) for r in fold_results.values() if r.get("backend")}))
  return Results(
    workdir=workdir,
    methods=tuple(methods),
    method_names=names,
    folds=expected,
    finished=finished,
    failed=failed,
    missing=tuple(k for k in expected if k not in fold_results),
    accuracy_pct=acc,
    ms_per_video=ms,
    fold_results=fold_results,
    config=config,
    dataset=str(dataset),
    backends=backends,
    seed=None if seed is None else int(seed),
    skipped=dict(
      sorted({v: r for res in fold_results.values() for v, r in res.get("skipped_videos", {}).items()}.items())
    ),
  )


def _first_of(fold_results: Mapping[int, Mapping[str, Any]], key: str) -> Any:
  for k in sorted(fold_results):
    v = fold_results[k].get(key)
    if v is not None:
      return v
  return None


def load_predictions(results: Results) -> pd.DataFrame:
  """predictions.csv of every FINISHED fold, concatenated (sorted by fold, then id).

  A predictions.csv without fold_result.json belongs to an unfinished fold and is left out.
  """
  frames = []
  for k in results.finished:
    path = workdir_lib.fold_dir(results.workdir, k) / workdir_lib.PREDICTIONS
    if not path.is_file():
      logging.warning("fold %d finished but has no predictions.csv: %s", k, path)
      continue
    df = pd.read_csv(path, dtype={"id": str, "subject": str})
    if "fold" not in df.columns:
      df.insert(3, "fold", k)
    frames.append(df)
  if not frames:
    return pd.DataFrame(columns=["id", "subject", "label", "fold", *results.methods])
  out = pd.concat(frames, ignore_index=True)
  return out.sort_values(["fold", "id"], kind="stable").reset_index(drop=True)


def confusion_matrices(
  predictions: pd.DataFrame, methods: Sequence[str], *, threshold: float = 0.5
) -> dict[str, np.ndarray]:
  """Per method, the 2x2 counts C[true, predicted] (0 posed, 1 spontaneous); predicted = 1 iff p > threshold
  (the training code's rule: p > 0.5, i.e. logit > 0).

  Rows whose probability is missing (NaN) for a method are left out of that method's matrix.
  """
  out = {}
  for m in methods:
    c = np.zeros((2, 2), dtype=np.int64)
    if m in predictions.columns and len(predictions):
      p = predictions[m].to_numpy(dtype=float)
      ok = np.isfinite(p)
      y = predictions["label"].to_numpy()[ok].astype(int)
      yhat = (p[ok] > threshold).astype(int)
      np.add.at(c, (y, yhat), 1)
    out[m] = c
  return out
