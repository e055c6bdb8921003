"""The workdir contract: what a run writes and the report, the explanation and notebooks read.

<workdir>/config.json                 the run config; "folds" = every fold requested so far
<workdir>/fold_03/<method>/           config.json, metrics.jsonl, checkpoints/, standardizer.npz (AUDA)
<workdir>/fold_03/predictions.csv     id, subject, label, fold, one P(spontaneous) column per method
<workdir>/fold_03/fold_result.json    accuracy and ms_per_video per method, split sizes, selected epochs,
                                      backend, dataset, seed, wall_s -- written last: its presence = finished
<workdir>/fold_03/FAILED              one line: why the fold failed (removed when it later succeeds)
<workdir>/results.md, results.csv, folds.csv, results.png, predictions_all.csv, confusion.*   (the report)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CONFIG = "config.json"
PREDICTIONS = "predictions.csv"
FOLD_RESULT = "fold_result.json"
FAILED = "FAILED"
_FOLD_DIR_RE = re.compile(r"^fold_(\d+)$")


def fold_dir(workdir: str | os.PathLike, fold: int) -> Path:
  """<workdir>/fold_XX (two digits)."""
  return Path(workdir) / f"fold_{int(fold):02d}"


def is_finished(workdir: str | os.PathLike, fold: int) -> bool:
  return (fold_dir(workdir, fold) / FOLD_RESULT).is_file()


def folds_present(workdir: str | os.PathLike) -> list[int]:
  """Fold numbers that have a fold_XX folder in ``workdir`` (finished or not), sorted."""
  out = []
  for p in Path(workdir).iterdir():
    m = _FOLD_DIR_RE.match(p.name)
    if m and p.is_dir():
      out.append(int(m.group(1)))
  return sorted(out)
