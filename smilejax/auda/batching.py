"""AUDA features of one video, a padded batch or a whole corpus: validation and the chunk scheduler (spec auda.md).

Phases first, in float64, for every video (``phases``); then the features in chunks of videos of similar length,
each chunk's time axis padded to a multiple of ``bucket`` frames (one compiled program per bucket), its segment
frames packed into rows on the host (``segments.row_indices``), computed in three compiled pieces (frame-wise
dynamics, slot gather, segment statistics), optionally several chunks at once in threads. Features are computed in
the input precision: float32 by default, float64 when the caller enables x64 (then bitwise like a sequential
evaluation, the validation setting).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from smilejax.auda.framewise import framewise_jit
from smilejax.auda.layout import AudaOptions, feature_dims, phase_labels, scale_window, scaled_windows
from smilejax.auda.perf import bucketed
from smilejax.auda.phases import detect_phases_batch
from smilejax.auda.segments import ROW_SIZE, gather_rows_jit, row_indices, segments_jit
from smilejax.constants import BASE_FPS
from smilejax.errors import InputError

_PHASE_CHUNK = 128  # videos per phase-detection call (benchmarks/README.md)
_REGROUP = 4  # chunks re-sorted by row count within runs of this many (sorted by length)
_SINGLE_BUCKET = 64  # extract: one video's time axis padded to a multiple of this (one compilation per bucket)


class AudaFeatures(NamedTuple):
  """All AUDA features of one video (spec sections 7-10)."""

  frame_TxD: jax.Array  # [T, 154]
  au_wise_D: jax.Array  # [476]
  cross_au_D: jax.Array  # [4352]
  phases_T: jax.Array  # int32 [T]
  no_smile_detected: bool  # no valid smile: its segments' features are zeros


class AudaFeaturesBatch(NamedTuple):
  """AUDA features of a padded batch (host NumPy arrays, input order); frames t >= lengths_B[b] are zeros."""

  frame_BxTxD: np.ndarray  # [B, T, 154]
  au_wise_BxD: np.ndarray  # [B, 476]
  cross_au_BxD: np.ndarray  # [B, 4352]
  phases_BxT: np.ndarray  # int32 [B, T] (0 beyond each length)
  no_smile_detected_B: np.ndarray  # bool [B]
  lengths_B: np.ndarray  # int32 [B]


def _resolve_options(options: Any, overrides: Mapping[str, Any]) -> AudaOptions:
  opts = AudaOptions.from_config(options)
  return opts.replace(**overrides) if overrides else opts


def _needed_frames(fps: float, opts: AudaOptions) -> int:
  return max(scaled_windows(opts, fps) + (scale_window(opts.phase_window, fps, opts.base_fps),))


def _check_length(n: int, label: str, fps: float, opts: AudaOptions):
  need = _needed_frames(fps, opts)
  if n < need:
    raise InputError(f"{label}: {n} frames is shorter than the largest AUDA window ({need} frames at {fps:g} fps)")


def _check_finite(au, si, label):
  if not (np.all(np.isfinite(au)) and np.all(np.isfinite(si))):
    raise InputError(f"{label}: AU or SI series contains NaN or inf")


def _map_in_threads(fn: Callable, items: Sequence, workers: int) -> list:
  """[fn(x) for x in items], ``workers`` at a time in threads: XLA releases the GIL while it computes."""
  if workers > 1 and len(items) > 1:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      return list(pool.map(fn, items))
  return [fn(x) for x in items]


def _phases_for(si_BxT, lengths_B, fps, opts, chunk=_PHASE_CHUNK, workers: int = 1):
  """Float64 phases of a padded batch, in chunks of ``chunk`` videos (the last one padded with copies)."""
  si_BxT = np.asarray(si_BxT, np.float64)
  lengths_B = np.asarray(lengths_B, np.int32)
  n = si_BxT.shape[0]

  def run(si_c, len_c):
    return np.asarray(
      detect_phases_batch(
        si_c,
        len_c,
        window=opts.phase_window,
        fps=fps,
        legacy_edge=opts.legacy_edge,
        stability=opts.phase_stability,
        min_smile_seconds=opts.min_smile_seconds,
      )
    )

  if n <= chunk:
    return run(si_BxT, lengths_B)
  if workers > 1:  # as many chunks per worker (e.g. 1240 videos, 2 workers, chunk 256: 6 x 208 instead of 5 x 256)
    n_chunks = bucketed(-(-n // chunk), workers)
    chunk = bucketed(-(-n // n_chunks), 8)
  parts = []
  for c0 in range(0, n, chunk):
    idx = np.minimum(np.arange(c0, c0 + chunk), n - 1)  # static chunk shape
    parts.append((si_BxT[idx], lengths_B[idx], min(chunk, n - c0)))
  outs = _map_in_threads(lambda p: run(p[0], p[1]), parts, workers)
  return np.concatenate([o[:k] for o, (_, _, k) in zip(outs, parts)])


def _chunk_features(au_BxTxA, si_BxT, lengths_B, rows, *, fps: float, opts: AudaOptions) -> dict:
  """All features of one padded chunk, in three compiled pieces (dynamics: shape [B, T]; slot gather; segment
  statistics: shape [row_size, B, R]); ``rows`` = (frame_idx, row_count, row_label) of ``segments.row_indices``
  (from the phases), so that the segment statistics run over the smile frames only. The same arithmetic as
  ``features.compute_features``."""
  lengths = np.asarray(lengths_B, np.int32)
  frame = framewise_jit(au_BxTxA, si_BxT, lengths, fps=fps, opts=opts, want_frame=True)
  idx, counts, row_label = rows
  idx = np.ascontiguousarray(idx.transpose(2, 0, 1))  # slot-major [S, B, R]
  n_au = au_BxTxA.shape[2]
  g = gather_rows_jit(frame, idx, n_ch=n_au * (1 + 2 * len(opts.windows)))
  out = segments_jit(g, idx, counts, row_label, fps=fps, opts=opts, n_au=n_au, want=("au_wise", "cross_au"))
  return {"frame": frame, **out}


def _chunk_order(lengths, rows_used, chunk: int) -> np.ndarray:
  """Video order for the chunks: by length (the dynamics' time axis) and, within every run of ``_REGROUP`` chunks,
  by row count (the segment statistics' row axis), so that each chunk does little padded work."""
  order = np.argsort(lengths, kind="stable")
  group = _REGROUP * chunk
  return np.concatenate(
    [
      order[g : g + group][np.argsort(rows_used[order[g : g + group]], kind="stable")]
      for g in range(0, len(lengths), group)
    ]
  )


def _extract_videos(
  au_list: Sequence[np.ndarray],
  si_list: Sequence[np.ndarray],
  *,
  fps: float,
  opts: AudaOptions,
  names: Sequence[str] | None,
  bucket: int,
  chunk_size: int | None,
  workers: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The scheduler behind :func:`extract_batch` and :func:`extract_corpus`, on per-video arrays: each compiled call
  gets its chunk's videos zero-padded once, to the chunk's own bucketed length. Returns (frame [B, T_max, D],
  au_wise [B, D], cross_au [B, D], phases int32 [B, T_max], lengths int64 [B]) in the input order."""
  lengths = np.array([a.shape[0] for a in au_list], np.int64)
  n_vid, t_len, n_au = len(au_list), int(lengths.max()), au_list[0].shape[1]
  # validation; the first offending video is named
  for b in range(n_vid):
    if lengths[b] < _needed_frames(fps, opts) or not (
      np.all(np.isfinite(au_list[b])) and np.all(np.isfinite(si_list[b]))
    ):
      label = names[b] if names is not None else f"video {b}"
      _check_length(int(lengths[b]), label, fps, opts)
      _check_finite(au_list[b], si_list[b], label)
  dtype = jax.dtypes.canonicalize_dtype(au_list[0].dtype)  # float32 unless x64 is enabled
  chunk = n_vid if not chunk_size else min(int(chunk_size), n_vid)
  t_all = bucketed(t_len, bucket)

  # phases for every video (float64), at the common bucketed length
  si_p = np.zeros((n_vid, t_all), np.float64)
  for b, si in enumerate(si_list):
    si_p[b, : lengths[b]] = si
  phases = _phases_for(si_p, lengths.astype(np.int32), fps, opts, workers=workers)

  # every video's label frames packed into rows at once (one NumPy pass instead of one per chunk); rows are used
  # from row 0, so a chunk takes the first (most rows any of its videos uses, rounded up to a multiple of 4)
  row_idx, row_count, row_label = row_indices(phases, lengths, phase_labels(opts), ROW_SIZE)
  rows_used = np.sum(row_label >= 0, axis=1)
  order = _chunk_order(lengths, rows_used, chunk)

  n_d = feature_dims(opts, n_au)
  frame = np.zeros((n_vid, t_len, n_d["frame"]), dtype)
  au_wise = np.zeros((n_vid, n_d["au_wise"]), dtype)
  cross = np.zeros((n_vid, n_d["cross_au"]), dtype)

  def run_chunk(c0):  # chunks write disjoint rows of the outputs
    idx = order[c0 : c0 + chunk]
    t_c = min(bucketed(int(lengths[idx].max()), bucket), t_all)
    full = np.concatenate([idx, np.repeat(idx[-1:], chunk - len(idx))])  # static chunk shape
    au_c = np.zeros((chunk, t_c, n_au), dtype)
    for i, b in enumerate(full):
      au_c[i, : lengths[b]] = au_list[b]
    n_rows = bucketed(int(rows_used[full].max()), 4)
    rows = (row_idx[full, :n_rows], row_count[full, :n_rows], row_label[full, :n_rows])
    out = _chunk_features(au_c, si_p[full, :t_c].astype(dtype), lengths[full], rows, fps=float(fps), opts=opts)
    k, span = len(idx), min(t_c, t_len)
    frame[idx, :span] = np.asarray(out["frame"])[:k, :span]
    au_wise[idx] = np.asarray(out["au_wise"])[:k]
    cross[idx] = np.asarray(out["cross_au"])[:k]

  _map_in_threads(run_chunk, range(0, n_vid, chunk), workers)
  phases_out = np.zeros((n_vid, t_len), np.int32)
  phases_out[:, : min(t_len, t_all)] = phases[:, :t_len]
  return frame, au_wise, cross, phases_out, lengths


def extract_batch(
  au_BxTxA,
  si_BxT,
  lengths_B,
  *,
  fps: float = BASE_FPS,
  options=None,
  names: Sequence[str] | None = None,
  bucket: int = 64,
  chunk_size: int | None = 16,
  workers: int = 1,
  **overrides,
) -> AudaFeaturesBatch:
  """All AUDA features of many padded videos (zero-padded at the end; real lengths ``lengths_B``; sections 5-10).

  Features of video b equal those of its unpadded prefix [:lengths_B[b]] (edge rule applied at the real length,
  padded frames excluded from every segment). Videos are processed in order of length, in chunks of
  ``chunk_size`` whose time axis is padded to a multiple of ``bucket`` frames, so each chunk does little padded
  work and one compiled function serves every chunk with the same bucket (``chunk_size=None``: one call for the
  whole batch). Phase detection runs first, in float64, for all videos. ``workers`` > 1 computes that many chunks
  at once in threads. Speeds of these settings: benchmarks/README.md.

  Returns host (NumPy) arrays in the input order: frame_BxTxD [B, T, 154] (zeros beyond each length), au_wise_BxD,
  cross_au_BxD, phases_BxT, no_smile_detected_B, lengths_B.

  Raises:
    InputError: a video shorter than the largest window (named by ``names[b]``, else its index), a length beyond
      the padded axis, or non-finite values in the real frames.
  """
  opts = _resolve_options(options, overrides)
  au = np.asarray(au_BxTxA)
  si = np.asarray(si_BxT, dtype=np.float64)
  lengths = np.asarray(lengths_B).astype(np.int64).reshape(-1)
  if au.ndim != 3 or si.shape != au.shape[:2] or lengths.shape[0] != au.shape[0]:
    raise ValueError(
      f"extract_batch expects au [B, T, A], si [B, T], lengths [B]; got {au.shape}, {si.shape}, {lengths.shape}"
    )
  if names is not None and len(names) != au.shape[0]:
    raise ValueError(f"extract_batch: {len(names)} names for {au.shape[0]} videos")
  for b in np.flatnonzero(lengths > au.shape[1])[:1]:
    label = names[b] if names is not None else f"video {b}"
    raise InputError(f"{label}: length {int(lengths[b])} exceeds the padded length {au.shape[1]}")
  if not np.issubdtype(au.dtype, np.floating):
    au = au.astype(np.float32)
  t_len = au.shape[1]
  frame, au_wise, cross, phases, _ = _extract_videos(
    [au[b, :n] for b, n in enumerate(lengths)],
    [si[b, :n] for b, n in enumerate(lengths)],
    fps=fps,
    opts=opts,
    names=names,
    bucket=bucket,
    chunk_size=chunk_size,
    workers=workers,
  )
  if frame.shape[1] < t_len:  # the caller's padding beyond the longest video
    frame = np.pad(frame, ((0, 0), (0, t_len - frame.shape[1]), (0, 0)))
    phases = np.pad(phases, ((0, 0), (0, t_len - phases.shape[1])))
  return AudaFeaturesBatch(frame, au_wise, cross, phases, ~np.any(phases > 0, axis=1), lengths.astype(np.int32))


def extract(au_TxA, si_T, *, fps: float = BASE_FPS, options=None, name: str | None = None, **overrides) -> AudaFeatures:
  """All AUDA features of one video (spec sections 5-10): :func:`extract_batch` of a batch of one.

  Args:
    au_TxA: [T, 17] AU intensities (section 1 order), used raw unless ``clip_au``.
    si_T: [T] smile intensity.
    fps: frame rate (windows scaled per section 2).
    options: AudaOptions, ConfigDict or mapping (defaults: section 11); keyword overrides, e.g.
      ``legacy_edge=False``, are applied on top.
    name: video id for error messages.

  Raises:
    InputError: a series shorter than the largest window (27 frames at 50 fps), mismatched or non-finite input.
  """
  label = name if name is not None else "<video>"
  au = np.asarray(au_TxA)
  si = np.asarray(si_T, dtype=np.float64)
  if au.ndim != 2:
    raise InputError(f"{label}: AU array must be [T, A], got shape {au.shape}")
  if si.ndim != 1 or si.shape[0] != au.shape[0]:
    raise InputError(f"{label}: SI series has shape {si.shape}, AU series has {au.shape[0]} frames")
  out = extract_batch(
    au[None],
    si[None],
    np.array([au.shape[0]]),
    fps=fps,
    options=options,
    names=[label],
    bucket=_SINGLE_BUCKET,
    chunk_size=None,
    **overrides,
  )
  return AudaFeatures(
    jnp.asarray(out.frame_BxTxD[0]),
    jnp.asarray(out.au_wise_BxD[0]),
    jnp.asarray(out.cross_au_BxD[0]),
    jnp.asarray(out.phases_BxT[0]),
    bool(out.no_smile_detected_B[0]),
  )


def extract_corpus(
  ids: Sequence[str],
  au: Mapping[str, np.ndarray],
  sis: Mapping[str, np.ndarray],
  fps: Mapping[str, float],
  *,
  options,
  chunk_size: int,
  workers: int,
  bucket: int,
  progress: str | None = None,
) -> dict[str, dict]:
  """AUDA features of many videos of any lengths and frame rates, batched for :func:`extract_batch`.

  Videos of one frame rate, in order of length (parts of similar lengths: fewer shapes to compile), are scheduled
  ``chunk_size`` x ``workers`` at a time like :func:`extract_batch` (one log line each when ``progress`` names the
  task); each compiled call pads its own chunk, once. ``au``: id -> [T, 17], cast to float32; ``sis``: id -> [T]; ``fps``: id -> frame rate.

  Returns {"frame": id -> float32 [T, 154], "phases": id -> int8 [T], "au_wise": id -> float32 [476],
  "cross_au": id -> float32 [4352], "no_smile": id -> bool}, each in the order of ``ids`` within a frame rate.
  """
  opts = AudaOptions.from_config(options)
  chunk, workers = int(chunk_size), int(workers)
  step = max(1, chunk) * max(1, workers)
  by_fps: dict[float, list[str]] = {}
  for vid in ids:
    by_fps.setdefault(float(fps[vid]), []).append(vid)
  out = {k: {} for k in ("frame", "phases", "au_wise", "cross_au", "no_smile")}
  t0, done = time.time(), 0
  for rate, group in by_fps.items():
    group = sorted(group, key=lambda v: len(sis[v]))
    for g0 in range(0, len(group), step):
      part = group[g0 : g0 + step]
      frame, au_wise, cross, phases, lengths = _extract_videos(
        [np.asarray(au[v], np.float32) for v in part],
        [np.asarray(sis[v], np.float64) for v in part],
        fps=rate,
        opts=opts,
        names=part,
        bucket=int(bucket),
        chunk_size=chunk,
        workers=workers,
      )
      for b, v in enumerate(part):
        n = lengths[b]
        out["frame"][v] = np.asarray(frame[b, :n], np.float32)
        out["phases"][v] = np.asarray(phases[b, :n], np.int8)
        out["au_wise"][v] = np.asarray(au_wise[b], np.float32)
        out["cross_au"][v] = np.asarray(cross[b], np.float32)
        out["no_smile"][v] = not np.any(phases[b] > 0)
      done += len(part)
      if progress:
        logging.info("%s: %d/%d videos (%.1f s)", progress, done, len(ids), time.time() - t0)
  return out
