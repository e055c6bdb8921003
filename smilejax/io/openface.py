"""OpenFace 2.x FeatureExtraction CSV: read the 17 AU intensities (and presence) of one face, write the same format.

Spec: ../shared/spec/auda.md section 1 (AU order and the rule for failed frames).

Format. OpenFace 2.x writes a header whose names are separated by ``", "`` (so names are stripped here) and rows
separated by ``","`` or ``", "``. Columns used: ``frame``, ``face_id`` (optional), ``timestamp``, ``confidence``,
``success``, ``AU01_r`` … ``AU45_r`` (required, 17) and ``AU01_c`` … ``AU45_c`` (optional, 18 with ``AU28_c``).
Every other column (gaze, pose, landmarks, …) is ignored and not even parsed.

Frame rate. Given (``fps``, e.g. ``bin/extract_features --fps`` or ``data.fps``), else read from the timestamps
(:func:`fps_from_timestamps`). OpenFace does not always write timestamps that give it (FeatureExtraction on an image
sequence steps by 0.001 s): a rate read from them outside ``fps_range`` is refused with a line that names the flag,
rather than passed on to a misleading error later.

Failed frames. A frame is *bad* when ``success == 0`` or one of its 17 AU values is NaN (OpenFace writes zeros for
failed frames, so they cannot be used as values). A run of at most ``max_gap_seconds`` of bad frames (converted to
frames with the file's frame rate, rounded: 0.2 s = 10 frames at 50 fps, auda.md section 1) is filled by linear
interpolation between the nearest good frames on either side (at the start or end of the series: the nearest good
value); the count goes to ``n_interpolated``. A longer run, or more than ``max_failed_fraction`` bad frames, is bad
input. ``success_T`` keeps the frames' original state (False for filled frames).

Several faces. A file that tracks more than one ``face_id`` is refused: smilejax scores one face per video and
choosing one silently could score the wrong person.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from smilejax.constants import AU_INTENSITY_COLUMNS, AU_PRESENCE_COLUMNS, NUM_AUS
from smilejax.errors import InputError

__all__ = [
  "OpenFaceSeries",
  "read_openface_csv",
  "write_openface_csv",
  "fill_bad_frames",
  "fps_from_timestamps",
  "max_gap_frames",
]

_META_COLUMNS = ("frame", "face_id", "timestamp", "confidence", "success")
_GIVE_FPS = "give the frame rate: bin/extract_features --fps=F, or --config.data.fps=F"


@dataclasses.dataclass(frozen=True)
class OpenFaceSeries:
  """The AU series of one face, one row per video frame.

  au_TxA: float64 [T, 17] AU intensities in ``constants.AU_INTENSITY_COLUMNS`` order (raw, unclipped; bad frames
    filled as described in the module docstring).
  timestamps_T: float64 [T] seconds, as written by OpenFace (or ``frame_index / fps`` when the file has none).
  fps: frames per second (given, or estimated from the timestamps, see :func:`fps_from_timestamps`).
  success_T: bool [T], OpenFace's ``success`` (False also for rows that held NaN AU values).
  confidence_T: float64 [T], OpenFace's ``confidence`` (1.0 when the column is absent).
  n_interpolated: number of bad frames filled by interpolation.
  presence_TxC: float64 [T, 18] in ``constants.AU_PRESENCE_COLUMNS`` order, or None when the file lacks them.
  """

  path: Path
  au_TxA: np.ndarray
  timestamps_T: np.ndarray
  fps: float
  success_T: np.ndarray
  confidence_T: np.ndarray
  n_interpolated: int
  presence_TxC: np.ndarray | None = None

  @property
  def n_frames(self) -> int:
    return int(self.au_TxA.shape[0])


def fps_from_timestamps(timestamps_T: np.ndarray, *, path: str | os.PathLike = "<array>") -> float:
  """Frame rate from timestamps in seconds.

  fps = 1 / median(diff(t)). When the steps are regular (every step within 25 % of the median, as in any OpenFace
  output), the mean rate (T - 1) / (t[-1] - t[0]) is used instead: OpenFace prints timestamps with 3 decimals, so
  single steps at 30 fps read 0.033 or 0.034 and the median alone would give 30.3. If an integer rate f explains
  every timestamp to the printed precision (|t_i - t_0 - i/f| <= 0.6 ms), f itself is returned (a 1.2 s clip at
  30 fps with 3-decimal stamps would otherwise read 30.008). Otherwise rounded to 1e-3 fps.
  """
  t = np.asarray(timestamps_T, dtype=np.float64)
  if t.size < 2:
    raise InputError(f"{path}: cannot estimate the frame rate from {t.size} timestamp(s); {_GIVE_FPS}")
  d = np.diff(t)
  step = float(np.median(d))
  if not np.isfinite(step) or step <= 0:
    raise InputError(f"{path}: timestamps do not increase (median step {step}); {_GIVE_FPS}")
  if np.all(np.abs(d - step) <= 0.25 * step):
    step = float(t[-1] - t[0]) / (t.size - 1)
    whole = round(1.0 / step)
    if whole > 0 and np.max(np.abs(t - t[0] - np.arange(t.size) / whole)) <= 6e-4:
      return float(whole)
  return round(1.0 / step, 3)


def _runs(mask_T: np.ndarray) -> list[tuple[int, int]]:
  """[start, stop) of each run of True in a 1-D bool array."""
  m = np.concatenate([[False], mask_T, [False]]).astype(np.int8)
  edges = np.flatnonzero(np.diff(m))
  return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def fill_bad_frames(values_TxK: np.ndarray, bad_T: np.ndarray) -> np.ndarray:
  """Linear interpolation over bad rows between the nearest good rows; edges take the nearest good row.

  x[t] = x[a] + (x[b] - x[a]) * (t - a) / (b - a) for a < t < b the nearest good frames (np.interp per column,
  which also holds the edge values constant). Requires at least one good row.
  """
  out = np.array(values_TxK, dtype=np.float64, copy=True)
  if not bad_T.any():
    return out
  t_all = np.arange(out.shape[0], dtype=np.float64)
  good = ~bad_T
  t_good, t_bad = t_all[good], t_all[bad_T]
  for k in range(out.shape[1]):
    out[bad_T, k] = np.interp(t_bad, t_good, out[good, k])
  return out


def _frame_label(frame_T: np.ndarray | None, i: int) -> int:
  return int(frame_T[i]) if frame_T is not None else i + 1


def _numeric(df: pd.DataFrame, name: str, path) -> np.ndarray:
  """Column as float64; a non-numeric entry is an InputError naming the column and the frame's line."""
  col = df[name]
  if pd.api.types.is_numeric_dtype(col.dtype):
    return col.to_numpy(dtype=np.float64, na_value=np.nan)
  as_num = pd.to_numeric(col, errors="coerce")
  bad = as_num.isna() & col.notna()
  if bad.any():
    i = int(np.flatnonzero(bad.to_numpy())[0])
    # +2: line 1 is the header, rows are 0-based.
    raise InputError(f"{path}: non-numeric value {str(col.iloc[i])!r} in column {name} at line {i + 2}")
  return as_num.to_numpy(dtype=np.float64, na_value=np.nan)


def max_gap_frames(max_gap_seconds: float, fps: float) -> int:
  """The longest run of bad frames that is interpolated: ``max_gap_seconds`` at ``fps``, rounded to whole frames."""
  return int(round(float(max_gap_seconds) * float(fps)))


def read_openface_csv(
  path: str | os.PathLike,
  *,
  max_gap_seconds: float = 0.2,
  max_failed_fraction: float = 0.10,
  fps: float | None = None,
  fps_range: tuple[float, float] = (10.0, 240.0),
) -> OpenFaceSeries:
  """Read one OpenFace 2.x CSV (one face) into an :class:`OpenFaceSeries`; see the module docstring for rules.

  Raises InputError (one line naming the file) for: a missing file, a file that is not an OpenFace CSV, an empty or
  header-only file, a missing AU column, a non-numeric value, several face_ids, no timestamps and no ``fps``, a
  frame rate read from the timestamps outside ``fps_range``, a run of more than ``max_gap_seconds`` of bad frames,
  or more than ``max_failed_fraction`` bad frames.
  """
  path = Path(path)
  if not path.is_file():
    raise InputError(f"{path}: OpenFace CSV not found")
  wanted = set(AU_INTENSITY_COLUMNS) | set(AU_PRESENCE_COLUMNS) | set(_META_COLUMNS)
  try:
    # usecols with stripped names: only ~40 of OpenFace's ~700 columns are parsed (fast on large files).
    df = pd.read_csv(path, skipinitialspace=True, usecols=lambda c: str(c).strip() in wanted, engine="c")
  except pd.errors.EmptyDataError:
    raise InputError(f"{path}: empty file (no OpenFace header)") from None
  except UnicodeDecodeError:
    raise InputError(f"{path}: not an OpenFace CSV (not a text file)") from None
  except (pd.errors.ParserError, ValueError) as err:
    raise InputError(f"{path}: not a readable OpenFace CSV ({str(err).strip().splitlines()[0]})") from None
  df.columns = [str(c).strip() for c in df.columns]
  if df.columns.duplicated().any():
    dup = sorted(set(df.columns[df.columns.duplicated()]))
    raise InputError(f"{path}: duplicated column(s) {', '.join(dup)}")
  missing = [c for c in AU_INTENSITY_COLUMNS if c not in df.columns]
  if len(missing) == len(AU_INTENSITY_COLUMNS) and not set(df.columns) & set(_META_COLUMNS):
    raise InputError(
      f"{path}: not an OpenFace CSV (its first line names none of the columns frame, timestamp, success, "
      f"{AU_INTENSITY_COLUMNS[0]} ... {AU_INTENSITY_COLUMNS[-1]})"
    )
  if missing:
    raise InputError(
      f"{path}: missing AU column {missing[0]}"
      + (f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else "")
    )
  n = len(df)
  if n == 0:
    raise InputError(f"{path}: no frames (header only)")

  if "face_id" in df.columns:
    faces = np.unique(_numeric(df, "face_id", path))
    if faces.size > 1:
      raise InputError(
        f"{path}: holds {faces.size} faces (face_id {', '.join(f'{f:g}' for f in faces[:5])});"
        " smilejax reads one face per video: keep one face's rows"
      )
  frame_T = _numeric(df, "frame", path) if "frame" in df.columns else None
  if frame_T is not None and not np.all(np.isfinite(frame_T)):
    frame_T = None

  if "timestamp" in df.columns:
    timestamps_T = _numeric(df, "timestamp", path)
    if not np.all(np.isfinite(timestamps_T)):
      i = int(np.flatnonzero(~np.isfinite(timestamps_T))[0])
      raise InputError(f"{path}: missing timestamp at line {i + 2}")
    if fps is None:
      fps = fps_from_timestamps(timestamps_T, path=path)
      lo, hi = fps_range
      if not lo <= fps <= hi:
        raise InputError(
          f"{path}: its timestamps (steps of {1.0 / fps:.4g} s) give {fps:g} fps, outside the plausible "
          f"{lo:g}-{hi:g} fps; {_GIVE_FPS}"
        )
  else:
    if fps is None:
      raise InputError(f"{path}: no timestamp column and no fps given")
    timestamps_T = np.arange(n, dtype=np.float64) / float(fps)
  if not (np.isfinite(fps) and fps > 0):
    raise InputError(f"{path}: invalid frame rate {fps}")
  max_gap = max_gap_frames(max_gap_seconds, fps)

  au_TxA = np.stack([_numeric(df, c, path) for c in AU_INTENSITY_COLUMNS], axis=1)
  has_presence = all(c in df.columns for c in AU_PRESENCE_COLUMNS)
  presence_TxC = np.stack([_numeric(df, c, path) for c in AU_PRESENCE_COLUMNS], axis=1) if has_presence else None
  if "success" in df.columns:
    success_raw = _numeric(df, "success", path)
    success_T = np.nan_to_num(success_raw, nan=0.0) != 0
  else:
    success_T = np.ones(n, dtype=bool)
  if "confidence" in df.columns:
    confidence_T = np.nan_to_num(_numeric(df, "confidence", path), nan=0.0)
  else:
    confidence_T = np.ones(n, dtype=np.float64)

  # Bad frames: failed tracking or a non-finite AU value (values of failed frames are zeros, not data).
  bad_T = ~success_T | ~np.all(np.isfinite(au_TxA), axis=1)
  if presence_TxC is not None:
    bad_T |= ~np.all(np.isfinite(presence_TxC), axis=1)
  n_bad = int(bad_T.sum())
  if n_bad == n:
    raise InputError(f"{path}: no successfully tracked frame (all {n} frames failed or hold NaN)")
  if n_bad:
    runs = _runs(bad_T)
    start, stop = max(runs, key=lambda r: r[1] - r[0])
    if stop - start > max_gap:
      raise InputError(
        f"{path}: {stop - start} consecutive failed/NaN frames (frames {_frame_label(frame_T, start)}-"
        f"{_frame_label(frame_T, stop - 1)}), more than the {max_gap} ({max_gap_seconds:g} s at {fps:g} fps) "
        "that may be interpolated"
      )
    if n_bad > max_failed_fraction * n:
      raise InputError(
        f"{path}: {n_bad} of {n} frames failed or hold NaN ({100.0 * n_bad / n:.1f} %), more "
        f"than {100.0 * max_failed_fraction:g} % (first gap: frames "
        f"{_frame_label(frame_T, runs[0][0])}-{_frame_label(frame_T, runs[0][1] - 1)})"
      )
    au_TxA = fill_bad_frames(au_TxA, bad_T)
    if presence_TxC is not None:
      presence_TxC = fill_bad_frames(presence_TxC, bad_T)

  success_T = success_T & ~bad_T
  return OpenFaceSeries(
    path=path,
    au_TxA=au_TxA,
    timestamps_T=timestamps_T,
    fps=float(fps),
    success_T=success_T,
    confidence_T=confidence_T,
    n_interpolated=n_bad,
    presence_TxC=presence_TxC,
  )


def write_openface_csv(
  path: str | os.PathLike,
  au_TxA: np.ndarray,
  *,
  timestamps_T: np.ndarray,
  success_T: np.ndarray | None = None,
  confidence_T: np.ndarray | None = None,
  presence_TxC: np.ndarray | None = None,
  face_id: bool = True,
  decimals: int = 2,
  timestamp_decimals: int = 3,
  presence_decimals: int = 1,
) -> Path:
  """Write an OpenFace 2.x style CSV (", "-separated header, ","-separated rows, as OpenFace's RecorderCSV).

  Columns: frame (1-based), [face_id = 0], timestamp (``timestamp_decimals``, OpenFace: 3), confidence
  (2 decimals), success (0/1), AU01_r … AU45_r (``decimals``, OpenFace: 2), then AU01_c … AU45_c
  (``presence_decimals``, OpenFace: 1) when ``presence_TxC`` is given.
  Failed frames are written as given (OpenFace itself writes zeros there). Returns the path.
  """
  path = Path(path)
  au_TxA = np.asarray(au_TxA, dtype=np.float64)
  if au_TxA.ndim != 2 or au_TxA.shape[1] != NUM_AUS:
    raise ValueError(f"au_TxA must be [T, {NUM_AUS}], got {au_TxA.shape}")
  n = au_TxA.shape[0]
  timestamps_T = np.asarray(timestamps_T, dtype=np.float64).reshape(-1)
  if timestamps_T.shape != (n,):
    raise ValueError(f"timestamps_T must be [{n}], got {timestamps_T.shape}")
  success_T = np.ones(n, dtype=bool) if success_T is None else np.asarray(success_T, dtype=bool).reshape(n)
  confidence_T = (
    np.where(success_T, 0.98, 0.0) if confidence_T is None else np.asarray(confidence_T, dtype=np.float64).reshape(n)
  )

  names = ["frame"] + (["face_id"] if face_id else []) + ["timestamp", "confidence", "success"]
  fmts = ["%d"] + (["%d"] if face_id else []) + [f"%.{timestamp_decimals}f", "%.2f", "%d"]
  cols = (
    [np.arange(1, n + 1)]
    + ([np.zeros(n)] if face_id else [])
    + [timestamps_T, confidence_T, success_T.astype(np.int64)]
  )
  names += list(AU_INTENSITY_COLUMNS)
  fmts += [f"%.{decimals}f"] * NUM_AUS
  cols += list(au_TxA.T)
  if presence_TxC is not None:
    presence_TxC = np.asarray(presence_TxC, dtype=np.float64)
    if presence_TxC.shape != (n, len(AU_PRESENCE_COLUMNS)):
      raise ValueError(f"presence_TxC must be [{n}, {len(AU_PRESENCE_COLUMNS)}], got {presence_TxC.shape}")
    names += list(AU_PRESENCE_COLUMNS)
    fmts += [f"%.{presence_decimals}f"] * len(AU_PRESENCE_COLUMNS)
    cols += list(presence_TxC.T)
  table = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savetxt(path, table, fmt=fmts, delimiter=",", header=", ".join(names), comments="")
  return path
