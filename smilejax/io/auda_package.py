"""The AUDA replication-data package (doi:10.7910/DVN/X5QGLA): read it, and write our own arrays in the same layout.

Spec: ../shared/spec/auda.md section 12. Layout (per video id ``<id>`` = the first four ``_``-separated tokens of a
file name, e.g. ``001_deliberate_smile_2``)::

    action_units/<id>_<suffix>.txt          CSV, header row of AU names, one row per frame (17 AU columns)
    smile_intensities/<id>_<suffix>.txt     one value per line, no header
    dynamics/<id>_<variant>.txt             CSV, header row, 17 columns, one row per frame
    features/<AU-wise|cross-AU> <segment>/<id>.txt   one comma-separated line: 119 (AU-wise) or 1088 (cross-AU)

Names that the package's documentation leaves open are matched loosely, as the spec asks:
- AU columns are mapped by the AU number parsed from the name (``AU1``, ``AU01``, ``AU01_r`` …; presence columns
  ``*_c`` are skipped), so any column order works; a missing one of the 17 is an InputError naming file and AU.
- Feature sub-folders match after normalising case, spaces and underscores (``AU-wise whole smile`` ==
  ``AU-wise_whole_smile``). Sub-folders of other kinds (sliding-window variants, whose names are unknown) are skipped.
- Phases (per-frame labels 0-3) exist in the package but their file names are unknown: not read.
The writer uses ``<id>_action_units.txt``, ``<id>_smile_intensities.txt``, ``dynamics/<id>_<variant>.txt`` and
``features/AU-wise_<segment>/<id>.txt`` (underscores), header ``AU01,AU02,…`` in ``constants.AU_NAMES`` order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from absl import logging

from smilejax.constants import AU_INDEX, AU_NAMES, NUM_AUS
from smilejax.errors import InputError
from smilejax.io import nemo, openface
from smilejax.io.intensity import read_smile_intensity, write_smile_intensity

__all__ = [
  "DYNAMICS_VARIANTS",
  "SEGMENTS",
  "AU_WISE_LENGTH",
  "CROSS_AU_LENGTH",
  "AudaPackageVideo",
  "read_au_table",
  "read_feature_vector",
  "read_auda_package",
  "write_auda_package",
  "package_video_id",
  "package_to_corpus",
]

DYNAMICS_VARIANTS = (
  "delta_9",
  "delta_27",
  "delta_adjusted_9",
  "delta_adjusted_27",
  "2nd_delta_9",
  "2nd_delta_27",
  "2nd_delta_adjusted_9",
  "2nd_delta_adjusted_27",
)
SEGMENTS = ("onset", "apex", "offset", "whole_smile", "whole_sequence")
AU_WISE_LENGTH = 119  # per segment, auda.md section 8
CROSS_AU_LENGTH = 1088  # per segment, auda.md section 9

ACTION_UNITS_DIR = "action_units"
SI_DIR = "smile_intensities"
DYNAMICS_DIR = "dynamics"
FEATURES_DIR = "features"
_KIND_DIR = {"au_wise": "AU-wise", "cross_au": "cross-AU"}
_KIND_LENGTH = {"au_wise": AU_WISE_LENGTH, "cross_au": CROSS_AU_LENGTH}
_AU_NAME_RE = re.compile(r"^\s*AU\s*0*(\d+)(?:_([a-z]))?\s*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class AudaPackageVideo:
  """One video's arrays from the package. Absent parts are None / empty dicts.

  au_TxA float64 [T, 17] (constants order); si_T float64 [T]; dynamics: variant -> [T, 17];
  au_wise: segment -> [119]; cross_au: segment -> [1088].
  """

  id: str
  au_TxA: np.ndarray | None = None
  si_T: np.ndarray | None = None
  dynamics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  au_wise: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  cross_au: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def package_video_id(file_name: str) -> str | None:
  """The video id of a package file name: its first four ``_``-separated tokens (None if fewer)."""
  stem = file_name[:-4] if file_name.endswith(".txt") else file_name
  tokens = stem.split("_")
  return "_".join(tokens[:4]) if len(tokens) >= 4 else None


def _check_finite(values: np.ndarray, path: Path) -> np.ndarray:
  if not np.all(np.isfinite(values)):
    idx = np.argwhere(~np.isfinite(values))[0]
    raise InputError(
      f"{path}: non-finite value at {'row ' + str(idx[0] + 2) + ', ' if values.ndim == 2 else ''}"
      f"{'column ' + str(idx[-1] + 1) if values.ndim == 2 else 'position ' + str(idx[0] + 1)}"
    )
  return values


def read_au_table(path: str | os.PathLike) -> np.ndarray:
  """float64 [T, 17] from a CSV with a header of AU names, columns mapped to ``constants.AU_NAMES`` by AU number.

  Columns naming another AU (AU28) or a presence output (``*_c``) are ignored; a column that is not an AU name, or a
  second column for the same AU, is ignored with a log line / refused respectively.
  """
  path = Path(path)
  try:
    df = pd.read_csv(path, skipinitialspace=True)
  except FileNotFoundError:
    raise InputError(f"{path}: file not found") from None
  except pd.errors.EmptyDataError:
    raise InputError(f"{path}: empty file") from None
  except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
    raise InputError(f"{path}: not a readable CSV ({str(err).strip().splitlines()[0]})") from None
  col_of_au: dict[int, str] = {}
  for name in df.columns:
    m = _AU_NAME_RE.match(str(name))
    if m is None:
      logging.log_first_n(logging.INFO, "%s: column %r is not an AU name; ignored", 5, path, name)
      continue
    au, suffix = int(m.group(1)), (m.group(2) or "").lower()
    if suffix == "c" or au not in AU_INDEX:
      continue
    if au in col_of_au:
      raise InputError(f"{path}: two columns for AU{au}: {col_of_au[au]!r} and {name!r}")
    col_of_au[au] = name
  missing = [n for n, name in zip(AU_INDEX, AU_NAMES) if n not in col_of_au]
  if missing:
    raise InputError(
      f"{path}: missing AU column AU{missing[0]}"
      + (f" (and AU{', AU'.join(map(str, missing[1:]))})" if len(missing) > 1 else "")
    )
  if len(df) == 0:
    raise InputError(f"{path}: no rows (header only)")
  cols = []
  for au in AU_INDEX:  # constants order
    col = pd.to_numeric(df[col_of_au[au]], errors="coerce")
    if col.isna().any():
      i = int(np.flatnonzero(col.isna().to_numpy())[0])
      raise InputError(
        f"{path}: non-numeric or missing value {str(df[col_of_au[au]].iloc[i])!r} in column "
        f"{col_of_au[au]} at line {i + 2}"
      )
    cols.append(col.to_numpy(dtype=np.float64))
  return _check_finite(np.stack(cols, axis=1), path)


def read_feature_vector(path: str | os.PathLike, *, length: int | None = None) -> np.ndarray:
  """float64 [D] from a file holding one comma-separated line (no header); ``length`` checked when given."""
  path = Path(path)
  try:
    text = path.read_text(encoding="utf-8").strip()
  except FileNotFoundError:
    raise InputError(f"{path}: file not found") from None
  if not text:
    raise InputError(f"{path}: empty feature file")
  if "\n" in text:
    raise InputError(f"{path}: expected one line, found {text.count(chr(10)) + 1}")
  try:
    values = np.array([float(v) for v in text.split(",")], dtype=np.float64)
  except ValueError:
    bad = next(v for v in text.split(",") if not _is_float(v))
    raise InputError(f"{path}: non-numeric value {bad.strip()[:40]!r}") from None
  if length is not None and values.size != length:
    raise InputError(f"{path}: {values.size} values, expected {length}")
  return _check_finite(values, path)


def _is_float(s: str) -> bool:
  try:
    float(s)
    return True
  except ValueError:
    return False


def _normalise(name: str) -> str:
  return re.sub(r"[\s_]+", "_", name.strip()).lower()


def _feature_folder_kind(name: str) -> tuple[str, str] | None:
  """``"AU-wise whole smile"`` -> ("au_wise", "whole_smile"); None for other folders."""
  norm = _normalise(name)
  for kind, prefix in _KIND_DIR.items():
    p = _normalise(prefix) + "_"
    if norm.startswith(p) and norm[len(p) :] in SEGMENTS:
      return kind, norm[len(p) :]
  return None


def _files_by_id(folder: Path) -> dict[str, list[Path]]:
  out: dict[str, list[Path]] = {}
  if folder.is_dir():
    for p in sorted(folder.iterdir()):
      if p.suffix == ".txt" and p.is_file():
        vid = package_video_id(p.name)
        if vid is not None:
          out.setdefault(vid, []).append(p)
  return out


def _single(files: dict[str, list[Path]], vid: str, what: str) -> Path | None:
  """The one file of ``vid`` in ``files`` (None if absent); two or more is an InputError naming them."""
  paths = files.get(vid, [])
  if len(paths) > 1:
    raise InputError(f"{paths[0].parent}: {len(paths)} {what} files for {vid}: {', '.join(p.name for p in paths)}")
  return paths[0] if paths else None


def _read_au_si(
  au_files: dict[str, list[Path]], si_files: dict[str, list[Path]], vid: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
  """``vid``'s AU table and SI series (None where absent); their lengths must agree."""
  au_path, si_path = _single(au_files, vid, "action-unit"), _single(si_files, vid, "smile-intensity")
  au = read_au_table(au_path) if au_path else None
  si = read_smile_intensity(si_path) if si_path else None
  if au is not None and si is not None and au.shape[0] != si.shape[0]:
    raise InputError(f"{vid}: {au_path} has {au.shape[0]} frames but {si_path} has {si.shape[0]} values")
  return au, si


def _some(ids: list[str], n: int = 5) -> str:
  """The first ``n`` ids, comma-separated, with " ..." when there are more (for one-line error messages)."""
  return ", ".join(ids[:n]) + (" ..." if len(ids) > n else "")


def read_auda_package(root: str | os.PathLike, *, ids: list[str] | None = None) -> dict[str, AudaPackageVideo]:
  """Read a package folder: id -> :class:`AudaPackageVideo` for every id found (or only ``ids``).

  An id with two ``action_units`` (or ``smile_intensities``) files is an InputError; an id asked for in ``ids``
  and absent from every folder is an InputError; AU and SI lengths of one id must agree.
  """
  root = Path(root)
  if not root.is_dir():
    raise InputError(f"{root}: AUDA package folder not found")
  au_files = _files_by_id(root / ACTION_UNITS_DIR)
  si_files = _files_by_id(root / SI_DIR)
  dyn_files = _files_by_id(root / DYNAMICS_DIR)
  feature_dirs: list[tuple[str, str, dict[str, list[Path]]]] = []
  if (root / FEATURES_DIR).is_dir():
    for sub in sorted((root / FEATURES_DIR).iterdir()):
      if sub.is_dir():
        kind = _feature_folder_kind(sub.name)
        if kind is None:
          logging.info("%s: feature folder of unknown kind; skipped", sub)
        else:
          feature_dirs.append((*kind, _files_by_id(sub)))
  found = set(au_files) | set(si_files) | set(dyn_files)
  for _, _, files in feature_dirs:
    found |= set(files)
  if ids is None:
    wanted = sorted(found)
  else:
    absent = [v for v in ids if v not in found]
    if absent:
      raise InputError(f"{root}: {len(absent)} id(s) not in the package: {', '.join(absent)}")
    wanted = list(ids)
  if not wanted:
    raise InputError(f"{root}: no AUDA package files found (expected {ACTION_UNITS_DIR}/, {SI_DIR}/, ...)")

  out = {}
  for vid in wanted:
    au, si = _read_au_si(au_files, si_files, vid)
    dynamics = {}
    for p in dyn_files.get(vid, []):
      variant = p.stem[len(vid) + 1 :]
      if variant not in DYNAMICS_VARIANTS:
        logging.log_first_n(logging.INFO, "%s: unknown dynamics variant %r; skipped", 5, p, variant)
        continue
      dynamics[variant] = read_au_table(p)
    au_wise, cross_au = {}, {}
    for kind, seg, files in feature_dirs:
      p = _single(files, vid, f"{kind} {seg}")
      if p is not None:
        (au_wise if kind == "au_wise" else cross_au)[seg] = read_feature_vector(p, length=_KIND_LENGTH[kind])
    out[vid] = AudaPackageVideo(id=vid, au_TxA=au, si_T=si, dynamics=dynamics, au_wise=au_wise, cross_au=cross_au)
  return out


def _fmt_table(values_TxA: np.ndarray, fmt: str) -> str:
  values_TxA = np.asarray(values_TxA, dtype=np.float64)
  if values_TxA.ndim != 2 or values_TxA.shape[1] != NUM_AUS:
    raise ValueError(f"expected [T, {NUM_AUS}], got {values_TxA.shape}")
  rows = [",".join(fmt % v for v in row) for row in values_TxA.tolist()]
  return ",".join(AU_NAMES) + "\n" + "\n".join(rows) + "\n"


def write_auda_package(root: str | os.PathLike, videos: Mapping[str, AudaPackageVideo], *, fmt: str = "%.17g") -> Path:
  """Write ``videos`` in the package layout under ``root`` (``fmt`` = "%.17g": reading back gives equal floats).

  Parts that are None / empty are not written. Returns ``root``.
  """
  root = Path(root)
  for vid, v in videos.items():
    if package_video_id(vid) != vid:
      raise ValueError(f"video id {vid!r} must have exactly four '_'-separated tokens")
    if v.au_TxA is not None:
      p = root / ACTION_UNITS_DIR / f"{vid}_action_units.txt"
      p.parent.mkdir(parents=True, exist_ok=True)
      p.write_text(_fmt_table(v.au_TxA, fmt), encoding="utf-8")
    if v.si_T is not None:
      p = root / SI_DIR / f"{vid}_smile_intensities.txt"
      p.parent.mkdir(parents=True, exist_ok=True)
      p.write_text("".join(fmt % x + "\n" for x in np.asarray(v.si_T, dtype=np.float64).tolist()), encoding="utf-8")
    for variant, values in v.dynamics.items():
      if variant not in DYNAMICS_VARIANTS:
        raise ValueError(f"unknown dynamics variant {variant!r}; expected one of {DYNAMICS_VARIANTS}")
      p = root / DYNAMICS_DIR / f"{vid}_{variant}.txt"
      p.parent.mkdir(parents=True, exist_ok=True)
      p.write_text(_fmt_table(values, fmt), encoding="utf-8")
    for kind, per_seg in (("au_wise", v.au_wise), ("cross_au", v.cross_au)):
      for seg, vec in per_seg.items():
        vec = np.asarray(vec, dtype=np.float64).reshape(-1)
        if seg not in SEGMENTS or vec.size != _KIND_LENGTH[kind]:
          raise ValueError(
            f"{kind}[{seg!r}]: expected a segment in {SEGMENTS} and {_KIND_LENGTH[kind]} values, got {vec.size}"
          )
        p = root / FEATURES_DIR / f"{_KIND_DIR[kind]}_{seg}" / f"{vid}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(",".join(fmt % x for x in vec.tolist()) + "\n", encoding="utf-8")
  return root


def package_to_corpus(
  package_root: str | os.PathLike,
  out: str | os.PathLike,
  *,
  fps: float = 50.0,
  folds: Mapping[int, list[str]] | None = None,
  overwrite: bool = False,
) -> Path:
  """Write the package's AU tables and smile-intensity series as a corpus folder without videos, so the experiment
  runs the AUDA classifiers on them (``configs/auda_package.py``; RealSmileNet needs the licensed videos).

  ``out`` gets ``openface/<id>.csv`` (OpenFace 2.x layout; every frame successful, timestamps ``i / fps``, AU values
  with 6 decimals, unclipped as in the package), ``smile_intensities/<id>_smile_intensities.txt``,
  ``folds/{P,S}_fold_all_k.txt`` and ``source.json``. Folds: ``folds`` if given, else the official UvA-NEMO lists
  restricted to the package's ids (an id in no list, or a fold left empty, is an InputError). The folder is
  written under a temporary name and renamed at the end, so an interrupted run never looks finished; an existing
  ``out`` is refused unless ``overwrite``.
  """
  package_root, out = Path(package_root), Path(out)
  if not package_root.is_dir():
    raise InputError(f"{package_root}: AUDA package folder not found")
  if out.exists() and not overwrite:
    raise InputError(f"{out}: exists (use overwrite to replace it)")
  au_files = _files_by_id(package_root / ACTION_UNITS_DIR)
  si_files = _files_by_id(package_root / SI_DIR)
  if not au_files:
    raise InputError(f"{package_root / ACTION_UNITS_DIR}: no action-unit tables")
  no_si = sorted(set(au_files) - set(si_files))
  if no_si:
    raise InputError(f"{package_root / SI_DIR}: no smile-intensity file for {len(no_si)} id(s): {_some(no_si)}")
  ids = sorted(au_files)
  if folds is None:
    official = nemo.read_fold_lists(None)
    in_lists = {v for fold_ids in official.values() for v in fold_ids}
    unlisted = [v for v in ids if v not in in_lists]
    if unlisted:
      raise InputError(
        f"{package_root}: {len(unlisted)} id(s) in no official UvA-NEMO fold list: {_some(unlisted)} (pass folds)"
      )
    present = set(ids)
    folds = {k: [v for v in fold_ids if v in present] for k, fold_ids in official.items()}
  absent = [v for fold_ids in folds.values() for v in fold_ids if v not in au_files]
  if absent:
    raise InputError(
      f"{package_root / ACTION_UNITS_DIR}: no action-unit table for {len(absent)} fold-list id(s): {_some(absent)}"
    )
  empty = [k for k, fold_ids in folds.items() if not fold_ids]
  if empty:
    raise InputError(f"{package_root}: fold(s) {empty} have no video in the package")

  tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    for i, vid in enumerate(v for fold_ids in folds.values() for v in fold_ids):
      au, si = _read_au_si(au_files, si_files, vid)  # both present: checked above
      openface.write_openface_csv(
        tmp / "openface" / f"{vid}.csv", au, timestamps_T=np.arange(au.shape[0]) / float(fps), decimals=6
      )
      write_smile_intensity(tmp / "smile_intensities" / f"{vid}_smile_intensities.txt", si)
      if (i + 1) % 200 == 0:
        logging.info("package_to_corpus: %d videos written", i + 1)
    nemo.write_fold_lists(tmp / "folds", {int(k): sorted(v) for k, v in folds.items()})
    (tmp / "source.json").write_text(
      json.dumps(
        {"auda_package": str(package_root.resolve()), "fps": fps, "videos": sum(len(v) for v in folds.values())},
        indent=1,
      )
    )
    if out.exists():
      shutil.rmtree(out)
    tmp.rename(out)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return out
