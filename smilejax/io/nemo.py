"""UvA-NEMO style corpus folders: video ids, fold lists and the file layout.

Layout (``smilejax.constants``; the synthetic corpus writes the same)::

    <root>/videos/<id>.mp4
    <root>/openface/<id>.csv
    <root>/smile_intensities/<id>_smile_intensities.txt
    <root>/folds/P_fold_all_k.txt, S_fold_all_k.txt   k = 1..K (absent: the official UvA-NEMO lists, package data)

A corpus written by ``bin/extract_aus`` (``au_source = "mediapipe"``: MediaPipe proxies of the AUs, not OpenFace's)
has, per id, ``openface/<id>.au_source.json`` (a sidecar naming the source) and ``crops/<id>.npy`` (uint8
[T, 48, 48, 3] aligned face crops of every frame, RealSmileNet's frames instead of the mp4). The sidecars keep the two
sources apart: :func:`scan_dataset` refuses a CSV whose sidecar does not match the requested source.

Ids: ``NNN_deliberate_smile_k`` (posed, label 0) or ``NNN_spontaneous_smile_k`` (spontaneous, label 1); the subject is
the 3-digit prefix. Fold k = ``P_fold_all_k.txt`` ∪ ``S_fold_all_k.txt``, one id per line. The official lists are in
``smilejax/data/folds/`` (see the README there for their source).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
from pathlib import Path

import numpy as np
from absl import logging

from smilejax.constants import (
  AU_SOURCE_SUFFIX,
  CROPS_DIR,
  FOLDS_DIR,
  KIND_TO_LABEL,
  LABEL_POSED,
  LABEL_SPONTANEOUS,
  OPENFACE_DIR,
  SMILE_INTENSITY_DIR,
  SMILE_INTENSITY_SUFFIX,
  VIDEO_DIR,
)
from smilejax.errors import InputError

__all__ = [
  "VIDEO_ID_RE",
  "parse_video_id",
  "fold_file_name",
  "read_fold_lists",
  "write_fold_lists",
  "DatasetFiles",
  "scan_dataset",
  "package_folds_dir",
  "AU_SOURCES",
  "CROPS_DIR",
  "AU_SOURCE_SUFFIX",
  "read_au_source",
  "read_crops",
]

AU_SOURCES = ("openface", "mediapipe")  # config data.au_source: who wrote openface/<id>.csv

VIDEO_ID_RE = re.compile(r"^(\d{3})_(deliberate|spontaneous)_smile_\d+$")
_FOLD_FILE_RE = re.compile(r"^([PS])_fold_all_(\d+)\.txt$")
_PREFIX_FOR_LABEL = {LABEL_POSED: "P", LABEL_SPONTANEOUS: "S"}


def parse_video_id(video_id: str, *, source: str | os.PathLike | None = None) -> tuple[str, int]:
  """``"001_deliberate_smile_2"`` -> (subject ``"001"``, label 0); a malformed id is an InputError.

  ``source`` (a file) is named in the error message when given.
  """
  m = VIDEO_ID_RE.match(video_id)
  if m is None:
    where = f"{source}: " if source is not None else ""
    raise InputError(f"{where}bad video id {video_id!r} (expected NNN_deliberate_smile_k or NNN_spontaneous_smile_k)")
  return m.group(1), KIND_TO_LABEL[m.group(2)]


def fold_file_name(kind: str, k: int) -> str:
  """``fold_file_name("P", 3) == "P_fold_all_3.txt"``."""
  return f"{kind}_fold_all_{k}.txt"


def package_folds_dir():
  """The official UvA-NEMO fold lists shipped with smilejax (an importlib.resources Traversable)."""
  return importlib.resources.files("smilejax").joinpath("data", "folds")


def _read_list(resource, name: str, kind: str) -> list[str]:
  """Ids of one fold file; checks the id format and that P holds posed and S spontaneous ids."""
  lines = resource.read_text(encoding="utf-8").split("\n")
  if lines[-1].strip() == "":
    lines.pop()  # the final newline
  ids = []
  for i, line in enumerate(lines):
    s = line.strip()
    if not s:
      raise InputError(f"{name}: blank line {i + 1}")
    _, label = parse_video_id(s, source=name)
    if _PREFIX_FOR_LABEL[label] != kind:
      raise InputError(
        f"{name}: id {s} is {'posed' if label == LABEL_POSED else 'spontaneous'} but the file is a {kind} list"
      )
    ids.append(s)
  return ids


def read_fold_lists(folder: str | os.PathLike | None = None) -> dict[int, list[str]]:
  """Fold k -> sorted ids (P ∪ S) for k = 1..K, from ``folder`` or, when None, the package's official lists.

  Checks: both P and S files exist for every k = 1..K (a missing one is an InputError naming it), ids are well
  formed, no id is listed twice, and no subject appears in two folds (cross-validation must be subject-independent).
  """
  if folder is None:
    root = package_folds_dir()
    label = "smilejax/data/folds"  # named in messages
  else:
    root = Path(folder)
    label = str(root)
    if not root.is_dir():
      raise InputError(f"{root}: fold-list folder not found")
  found: dict[tuple[str, int], object] = {}
  for entry in root.iterdir():
    m = _FOLD_FILE_RE.match(entry.name)
    if m:
      found[(m.group(1), int(m.group(2)))] = entry
  if not found:
    raise InputError(f"{label}: no fold lists (expected P_fold_all_1.txt, S_fold_all_1.txt, ...)")
  n_folds = max(k for _, k in found)
  missing = [fold_file_name(kind, k) for k in range(1, n_folds + 1) for kind in "PS" if (kind, k) not in found]
  if missing:
    raise InputError(f"{label}: missing fold file(s) {', '.join(missing)}")
  folds: dict[int, list[str]] = {}
  where_id: dict[str, str] = {}
  fold_of_subject: dict[str, tuple[int, str]] = {}
  for k in range(1, n_folds + 1):
    ids = []
    for kind in "PS":
      name = f"{label}/{fold_file_name(kind, k)}"
      for vid in _read_list(found[(kind, k)], name, kind):
        if vid in where_id:
          raise InputError(f"{name}: id {vid} is also listed in {where_id[vid]}")
        where_id[vid] = name
        subject = vid[:3]
        if subject in fold_of_subject and fold_of_subject[subject][0] != k:
          raise InputError(
            f"{name}: subject {subject} (id {vid}) is also in fold "
            f"{fold_of_subject[subject][0]} ({fold_of_subject[subject][1]}); folds must be "
            "subject-independent"
          )
        fold_of_subject.setdefault(subject, (k, name))
        ids.append(vid)
    folds[k] = sorted(ids)
  return folds


def write_fold_lists(folder: str | os.PathLike, folds: dict[int, list[str]]) -> Path:
  """Write ``P_fold_all_k.txt`` / ``S_fold_all_k.txt`` (sorted ids, one per line, final newline) for each fold k.

  Folds must be numbered 1..K. Returns the folder.
  """
  folder = Path(folder)
  if sorted(folds) != list(range(1, len(folds) + 1)):
    raise ValueError(f"folds must be numbered 1..K, got {sorted(folds)}")
  folder.mkdir(parents=True, exist_ok=True)
  for k, ids in folds.items():
    by_kind = {"P": [], "S": []}
    for vid in ids:
      _, label = parse_video_id(vid)
      by_kind[_PREFIX_FOR_LABEL[label]].append(vid)
    for kind, kind_ids in by_kind.items():
      (folder / fold_file_name(kind, k)).write_text("".join(f"{v}\n" for v in sorted(kind_ids)), encoding="utf-8")
  return folder


@dataclasses.dataclass(frozen=True)
class DatasetFiles:
  """The files of a corpus folder, checked. ``ids`` = every id of the folds, sorted; per-id paths (None where a
  part is not required and absent)."""

  root: Path
  folds: dict[int, list[str]]
  folds_source: str  # the fold folder, or "package" for the official lists
  ids: tuple[str, ...]
  video_paths: dict[str, Path | None]
  openface_paths: dict[str, Path | None]
  si_paths: dict[str, Path | None]
  missing: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # id -> its absent files (missing_ok)
  crop_paths: dict[str, Path | None] = dataclasses.field(default_factory=dict)  # require_crops (au_source mediapipe)


def _listing(folder: Path) -> set[str]:
  """The names in ``folder`` (empty when it is not a folder)."""
  return {e.name for e in folder.iterdir()} if folder.is_dir() else set()


def read_au_source(sidecar: Path) -> str:
  """The ``au_source`` a bin/extract_aus sidecar names (InputError, one line, when it is unreadable)."""
  try:
    source = json.loads(sidecar.read_text(encoding="utf-8")).get("au_source")
  except (OSError, ValueError, AttributeError) as err:
    raise InputError(f"{sidecar}: unreadable AU-source sidecar ({err})") from None
  if not isinstance(source, str) or not source:
    raise InputError(f"{sidecar}: AU-source sidecar without an au_source")
  return source


def read_crops(path: Path, n_frames: int) -> np.ndarray:
  """``crops/<id>.npy`` opened without reading it whole (uint8 [T, H, W, 3] with T = ``n_frames``, the CSV's frame
  count); a damaged file or another shape is an InputError naming it."""
  try:
    crops = np.load(path, mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError) as err:
    raise InputError(f"{path}: unreadable crops file ({err})") from None
  if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[0] != n_frames:
    raise InputError(
      f"{path}: crops {crops.dtype} {list(crops.shape)}, expected uint8 [{n_frames}, H, W, 3] (one per CSV frame)"
    )
  return crops


def _check_au_source(root: Path, ids: list[str], csvs: set[str], au_source: str) -> None:
  """Every CSV of ``ids`` must come from ``au_source``: "mediapipe" needs each one's sidecar saying so, "openface"
  refuses any CSV with a sidecar (bin/extract_aus output). One InputError line naming the first offending file."""
  if au_source not in AU_SOURCES:
    raise InputError(f"config data.au_source must be one of {AU_SOURCES}, got {au_source!r}")
  wrong = []
  for vid in ids:
    if f"{vid}.csv" not in csvs:
      continue
    sidecar = root / OPENFACE_DIR / f"{vid}{AU_SOURCE_SUFFIX}"
    found = read_au_source(sidecar) if f"{vid}{AU_SOURCE_SUFFIX}" in csvs else "openface"
    if found != au_source:
      wrong.append((vid, sidecar, found))
  if not wrong:
    return
  vid, sidecar, found = wrong[0]
  more = f" (and {len(wrong) - 1} more of {len(ids)} videos)" if len(wrong) > 1 else ""
  if au_source == "mediapipe":
    raise InputError(
      f"{root / OPENFACE_DIR / (vid + '.csv')}: written by OpenFace, not by bin/extract_aus (no {sidecar.name} "
      f"saying au_source mediapipe){more}; data.au_source = mediapipe needs a corpus written by bin/extract_aus"
    )
  raise InputError(
    f"{root / OPENFACE_DIR / (vid + '.csv')}: written by bin/extract_aus (au_source {found}, {sidecar.name}), not by "
    f"OpenFace{more}; set --config.data.au_source={found} for such a corpus"
  )


def scan_dataset(
  root: str | os.PathLike,
  *,
  require_video: bool = True,
  require_si: bool = True,
  folds: dict[int, list[str]] | None = None,
  missing_ok: bool = False,
  au_source: str = "openface",
  require_crops: bool = False,
) -> DatasetFiles:
  """Check a corpus folder against the layout above and return its files.

  Every id in the fold lists (``<root>/folds``, else the package lists; or ``folds`` when given) must have its
  OpenFace CSV, its smile-intensity file (``require_si``) and its video (``require_video``). Problems are reported
  together, in one InputError line:
    - a required sub-folder is absent -> "<root>: missing folder(s) openface/, ...";
    - ids listed in a fold file with none of their files -> "<fold file>: N ids listed but not in <root>: ...";
    - some files of known ids absent -> "<root>: N files missing: videos/x.mp4, openface/y.csv, ...".
  Files of ids that no fold lists are ignored (logged). ``missing_ok``: absent files of known ids are returned in
  ``DatasetFiles.missing`` (id -> relative paths) instead (their paths None), for a caller that lists every bad
  video at once. ``au_source``: who must have written the CSVs (``_check_au_source``); ``require_crops``: each id
  needs ``crops/<id>.npy`` (frames of a bin/extract_aus corpus, asked for instead of ``require_video``).
  """
  root = Path(root)
  if not root.is_dir():
    raise InputError(f"{root}: dataset folder not found")
  folds_dir = root / FOLDS_DIR
  if folds is not None:
    folds_source = "given"
  elif folds_dir.is_dir():
    folds = read_fold_lists(folds_dir)
    folds_source = str(folds_dir)
  else:
    folds = read_fold_lists(None)
    folds_source = "package"
  required = [OPENFACE_DIR] + ([SMILE_INTENSITY_DIR] if require_si else []) + ([VIDEO_DIR] if require_video else [])
  required += [CROPS_DIR] if require_crops else []
  if (root / OPENFACE_DIR).is_dir():  # first: the likeliest cause of the other complaints (a corpus of the other kind)
    _check_au_source(root, sorted(v for ids in folds.values() for v in ids), _listing(root / OPENFACE_DIR), au_source)
  absent = [d + "/" for d in required if not (root / d).is_dir()]
  if absent:
    raise InputError(
      f"{root}: missing folder(s) {', '.join(absent)} (expected layout: videos/<id>.mp4, "
      f"openface/<id>.csv, smile_intensities/<id>{SMILE_INTENSITY_SUFFIX})"
    )

  def listing(d: str) -> set[str]:
    return _listing(root / d)

  videos, csvs, sis = listing(VIDEO_DIR), listing(OPENFACE_DIR), listing(SMILE_INTENSITY_DIR)
  crops = listing(CROPS_DIR) if require_crops else set()
  rel = {
    "crops": lambda v: f"{CROPS_DIR}/{v}.npy",
    "video": lambda v: f"{VIDEO_DIR}/{v}.mp4",
    "openface": lambda v: f"{OPENFACE_DIR}/{v}.csv",
    "si": lambda v: f"{SMILE_INTENSITY_DIR}/{v}{SMILE_INTENSITY_SUFFIX}",
  }
  have = {
    "crops": lambda v: f"{v}.npy" in crops,
    "video": lambda v: f"{v}.mp4" in videos,
    "openface": lambda v: f"{v}.csv" in csvs,
    "si": lambda v: f"{v}{SMILE_INTENSITY_SUFFIX}" in sis,
  }
  needed = ["openface"] + (["si"] if require_si else []) + (["video"] if require_video else [])
  needed += ["crops"] if require_crops else []
  all_ids = sorted(v for ids in folds.values() for v in ids)
  unknown: dict[int, list[str]] = {}
  missing: list[str] = []
  for k, ids in folds.items():
    for vid in ids:
      if not any(have[part](vid) for part in ("video", "openface", "si")):
        unknown.setdefault(k, []).append(vid)
  if unknown:
    src = {"package": "smilejax/data/folds", "given": "<folds given>"}.get(folds_source, folds_source)
    by_file: dict[str, list[str]] = {}
    for k, ids in sorted(unknown.items()):
      for vid in ids:
        kind = "P" if parse_video_id(vid)[1] == LABEL_POSED else "S"
        by_file.setdefault(f"{src}/{fold_file_name(kind, k)}", []).append(vid)
    raise InputError(
      "; ".join(
        f"{name}: {len(ids)} id(s) listed but with no files in {root}: {', '.join(ids)}"
        for name, ids in by_file.items()
      )
    )
  missing_of: dict[str, tuple[str, ...]] = {}
  for vid in all_ids:
    absent = tuple(rel[part](vid) for part in needed if not have[part](vid))
    if absent:
      missing_of[vid] = absent
      missing.extend(absent)
  if missing and not missing_ok:
    raise InputError(f"{root}: {len(missing)} file(s) missing: {', '.join(missing)}")
  extra = {n[:-4] for n in csvs if n.endswith(".csv")} - set(all_ids)
  if extra:
    logging.info("%s: %d OpenFace file(s) of ids in no fold list ignored (e.g. %s)", root, len(extra), sorted(extra)[0])
  return DatasetFiles(
    root=root,
    folds=folds,
    folds_source=folds_source,
    ids=tuple(all_ids),
    video_paths={v: (root / rel["video"](v)) if have["video"](v) else None for v in all_ids},
    openface_paths={v: (root / rel["openface"](v)) if have["openface"](v) else None for v in all_ids},
    si_paths={v: (root / rel["si"](v)) if have["si"](v) else None for v in all_ids},
    missing=missing_of,
    crop_paths={v: (root / rel["crops"](v)) if have["crops"](v) else None for v in all_ids} if require_crops else {},
  )
