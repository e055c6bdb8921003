"""Independent, plainly written float64 NumPy reference for the AUDA features (../shared/spec/auda.md).

Written from the specification only, with explicit loops and no shared code with smilejax.auda, so that the JAX
implementation is checked against a second reading of the spec rather than against itself. Slow by design: the
benchmark (benchmarks/bench_auda.py) times it on a subset of videos only.

Conventions: AU series au_TxA (float64 [T, 17], AU order of smilejax.constants), SI series si_T (float64 [T]).
"""

from __future__ import annotations

import math

import numpy as np

NONE, ONSET, APEX, OFFSET = 0, 1, 2, 3
SEGMENT_LABELS = {
  "onset": (ONSET,),
  "apex": (APEX,),
  "offset": (OFFSET,),
  "whole_smile": (ONSET, APEX, OFFSET),
  "whole_sequence": (NONE, ONSET, APEX, OFFSET),
}
DEFAULT_SEGMENTS = ("onset", "apex", "offset", "whole_smile")


def ref_scale_window(window: int, fps: float, base_fps: float = 50.0) -> int:
  """Section 2: the nearest odd integer to window * fps / base_fps (an exact even value rounds up), at least 3."""
  scaled = window * fps / base_fps
  return max(3, 2 * int(math.floor(scaled / 2.0)) + 1)


def ref_padded(x, window: int, legacy_edge: bool = True) -> np.ndarray:
  """The padded array of length N + 2h, built the way section 3 describes the original program."""
  x = np.asarray(x, dtype=np.float64)
  n = len(x)
  h = window // 2
  xp = np.zeros(n + 2 * h)
  for p in range(h):
    xp[p] = x[0]
  for k in range(n):
    xp[h + k] = x[k]
  if legacy_edge:
    for p in range(n, n + 2 * h):  # overwrites the last h real samples too
      xp[p] = x[n - 1]
  else:
    for p in range(n + h, n + 2 * h):
      xp[p] = x[n - 1]
  return xp


def ref_trend(x, window: int, legacy_edge: bool = True):
  """Sliding-window regression (section 2): returns delta, r, delta_adj, each float64 [N]."""
  x = np.asarray(x, dtype=np.float64)
  n = len(x)
  xp = ref_padded(x, window, legacy_edge)
  tbar = (window - 1) / 2.0
  s_tt = 0.0
  for j in range(window):
    s_tt += (j - tbar) ** 2
  delta = np.zeros(n)
  r = np.zeros(n)
  for t in range(n):
    v = xp[t : t + window]
    if v.max() == v.min():
      delta[t] = 0.0
      r[t] = 1.0
      continue
    mean = 0.0
    for j in range(window):
      mean += v[j]
    mean /= window
    s_tv = 0.0
    s_vv = 0.0
    for j in range(window):
      dv = v[j] - mean
      s_tv += (j - tbar) * dv
      s_vv += dv * dv
    delta[t] = s_tv / s_tt
    r[t] = s_tv / math.sqrt(s_tt * s_vv)
  return delta, r, delta * np.abs(r)


def ref_dynamics(x, window: int, legacy_edge: bool = True):
  """First and second order: (delta, r, delta_adj, delta2, r2, delta2_adj)."""
  d, r, da = ref_trend(x, window, legacy_edge)
  d2, r2, d2a = ref_trend(d, window, legacy_edge)
  return d, r, da, d2, r2, d2a


def ref_detect_phases(
  si, window: int = 27, fps: float = 50.0, legacy_edge: bool = True, stab: int = 3, min_smile_seconds: float = 1.0
) -> np.ndarray:
  """Section 5, a literal transcription of the pseudocode."""
  v = np.asarray(si, dtype=np.float64)
  n = len(v)
  w = ref_scale_window(window, fps)
  d, _, _, dd, _, _ = ref_dynamics(v, w, legacy_edge)
  min_len = int(round(fps * min_smile_seconds))
  label = np.zeros(n, dtype=np.int32)
  s = 0
  while s < n:
    # (a)
    found = -1
    for k in range(s, n - stab + 1):
      if all(d[k + i] > 0 for i in range(stab)):
        found = k
        break
    if found < 0:
      break
    s = found
    # (b)
    rise, best_up = -1, 0.0
    fall, best_down = -1, 0.0
    peak = v[s]
    mid = v[s]
    falling = False
    run = 0
    end = n
    for k in range(s, n):
      if d[k] > best_up:
        best_up, rise = d[k], k
      if d[k] < best_down:
        best_down, fall = d[k], k
      if v[k] > peak:
        peak = v[k]
        mid = (v[s] + peak) / 2
      if v[k] < mid and d[k] < 0:
        falling = True
      if falling:
        run = run + 1 if d[k] > 0 else 0
      if falling and run == stab:
        end = k - stab
        break
    # (c)
    if fall == -1:
      label[s:end] = NONE
      s = end
      continue
    # (d)
    apex = s
    for k in range(rise + 1, fall):
      if dd[k - 1] < dd[k]:
        apex = k - 1
        break
    # (e)
    off = -1
    for k in range(fall - 2, rise, -1):
      if dd[k + 1] < dd[k]:
        off = k + 1
        break
    # (f)
    if apex == off:
      if apex - rise > fall - apex:
        apex = rise
      else:
        off = fall
    # (g)
    valid = (s < apex < off < end) and (end - s >= min_len)
    if valid:
      label[s:apex] = ONSET
      label[apex:off] = APEX
      label[off:end] = OFFSET
    else:
      label[s:end] = NONE
    s = end
  return label


def ref_all_dynamics(au_TxA, fps: float = 50.0, windows=(9, 27), legacy_edge: bool = True):
  """dict[(name, window_index)] -> float64 [T, A] for name in delta, delta_adj, delta2, delta2_adj."""
  au = np.asarray(au_TxA, dtype=np.float64)
  t_len, n_au = au.shape
  out = {}
  for k, w_nominal in enumerate(windows):
    w = ref_scale_window(w_nominal, fps)
    for name in ("delta", "delta_adj", "delta2", "delta2_adj"):
      out[(name, k)] = np.zeros((t_len, n_au))
    for a in range(n_au):
      d, _, da, d2, _, d2a = ref_dynamics(au[:, a], w, legacy_edge)
      out[("delta", k)][:, a] = d
      out[("delta_adj", k)][:, a] = da
      out[("delta2", k)][:, a] = d2
      out[("delta2_adj", k)][:, a] = d2a
  return out


def ref_frame_features(
  au_TxA, si_T, fps: float = 50.0, windows=(9, 27), legacy_edge: bool = True, clip_au: bool = False
) -> np.ndarray:
  """Section 7: [T, 17 + 8 * 17 + 1]."""
  au = np.asarray(au_TxA, dtype=np.float64)
  if clip_au:
    au = np.clip(au, 0.0, 5.0)
  dyn = ref_all_dynamics(au, fps, windows, legacy_edge)
  blocks = [au]
  for name in ("delta", "delta_adj", "delta2", "delta2_adj"):
    for k in range(len(windows)):
      blocks.append(dyn[(name, k)])
  blocks.append(np.asarray(si_T, dtype=np.float64)[:, None])
  return np.concatenate(blocks, axis=1)


def ref_segment_frames(phases_T, segment: str) -> list[int]:
  return [t for t in range(len(phases_T)) if int(phases_T[t]) in SEGMENT_LABELS[segment]]


def ref_au_wise_segment(au, dyn, frames, n_windows: int = 2) -> np.ndarray:
  """Section 8 for one segment (frame list): 3 * 17 + 2 * 17 * n_windows values."""
  n_au = au.shape[1]
  out = np.zeros(3 * n_au + 2 * n_au * n_windows)
  if not frames:
    return out
  for a in range(n_au):
    vals = [au[t, a] for t in frames]
    out[a] = max(vals) - min(vals)
    out[n_au + a] = sum(vals) / len(vals)
    out[2 * n_au + a] = max(vals)
    for k in range(n_windows):
      dv = [dyn[("delta", k)][t, a] for t in frames]
      out[3 * n_au + n_windows * a + k] = sum(dv) / len(dv)
      out[3 * n_au + n_windows * n_au + n_windows * a + k] = max(dv)
  return out


def ref_cross_au_segment(
  dyn,
  frames,
  fps: float = 50.0,
  n_windows: int = 2,
  n_au: int = 17,
  cross_au_abs: bool = True,
  time_unit: str = "seconds",
) -> np.ndarray:
  """Section 9 for one segment: 4 blocks of (pairs * n_windows) values."""
  pairs = [(i, j) for i in range(n_au) for j in range(i + 1, n_au)]
  block = len(pairs) * n_windows
  out = np.zeros(4 * block)
  if not frames:
    return out
  scale = 1.0 / fps if time_unit == "seconds" else 1.0
  frames = np.asarray(frames)
  for p, (i, j) in enumerate(pairs):
    assert p == i * (2 * n_au - 1 - i) // 2 + (j - i - 1)
    for k in range(n_windows):
      d = dyn[("delta", k)][frames]
      da = dyn[("delta_adj", k)][frames]
      diffs = d[:, i] - d[:, j]
      if cross_au_abs:
        diffs = np.abs(diffs)
      out[n_windows * p + k] = diffs.min()
      out[block + n_windows * p + k] = diffs.max()
      # np.argmax / np.argmin return the first occurrence: the earliest frame of the segment
      out[2 * block + n_windows * p + k] = (frames[np.argmax(da[:, i])] - frames[np.argmax(da[:, j])]) * scale
      out[3 * block + n_windows * p + k] = (frames[np.argmin(da[:, i])] - frames[np.argmin(da[:, j])]) * scale
  return out


def ref_extract(
  au_TxA,
  si_T,
  fps: float = 50.0,
  windows=(9, 27),
  legacy_edge: bool = True,
  clip_au: bool = False,
  phase_window: int = 27,
  segments=DEFAULT_SEGMENTS,
  cross_au_abs: bool = True,
  time_unit: str = "seconds",
  min_smile_seconds: float = 1.0,
):
  """All AUDA features of one video: dict(frame, au_wise, cross_au, phases, no_smile_detected)."""
  au = np.asarray(au_TxA, dtype=np.float64)
  if clip_au:
    au = np.clip(au, 0.0, 5.0)
  si = np.asarray(si_T, dtype=np.float64)
  phases = ref_detect_phases(si, phase_window, fps, legacy_edge, min_smile_seconds=min_smile_seconds)
  dyn = ref_all_dynamics(au, fps, windows, legacy_edge)
  frame = ref_frame_features(au, si, fps, windows, legacy_edge)
  au_wise, cross = [], []
  for seg in segments:
    frames = ref_segment_frames(phases, seg)
    au_wise.append(ref_au_wise_segment(au, dyn, frames, len(windows)))
    cross.append(ref_cross_au_segment(dyn, frames, fps, len(windows), au.shape[1], cross_au_abs, time_unit))
  return {
    "frame": frame,
    "au_wise": np.concatenate(au_wise),
    "cross_au": np.concatenate(cross),
    "phases": phases,
    "no_smile_detected": not bool(np.any(phases > 0)),
  }
