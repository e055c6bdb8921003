"""Which frames a model sees, and how variable-length sequences become one padded batch (realsmilenet.md §2, §4).

The one home of the frame sampling: the video frames fed to RealSmileNet and the frame-wise AUDA rows fed to its
recurrent model are taken at the same indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def default_frame_stride(fps: float) -> int:
  """round(fps / 10), at least 1: 5 at UvA-NEMO's 50 fps, 3 at 30 fps (realsmilenet.md §2)."""
  return max(1, int(round(fps / 10.0)))


def sample_frame_indices(n_frames: int, stride: int) -> np.ndarray:
  """Indices of the frames a model sees (realsmilenet.md §2): int64 [T'].

  Every ``stride``-th frame from index 0 (0, s, 2s, ...), plus the last frame n - 1 when the remainder
  r = n mod s satisfies r >= 2/3 * s (r = 4 at s = 5).
  """
  if stride < 1:
    raise ValueError(f"stride must be >= 1, got {stride}")
  idx = np.arange(0, max(int(n_frames), 0), int(stride), dtype=np.int64)
  r = n_frames % stride
  if n_frames > 0 and r > 0 and 3 * r >= 2 * stride:
    idx = np.append(idx, n_frames - 1)
  return idx


def pad_to_bucket(arrays: Sequence[np.ndarray], *, bucket: int = 16) -> tuple[np.ndarray, np.ndarray]:
  """Stack arrays of lengths T_b (axis 0) into [B, T_pad, ...], zeros at the END, with int32 lengths [B].

  T_pad = bucket * ceil(max_b T_b / bucket) (at least ``bucket``), so a few distinct shapes cover every batch
  and jit compiles once per bucket (realsmilenet.md §4). All arrays must share trailing shape and dtype.
  """
  if len(arrays) == 0:
    raise ValueError("pad_to_bucket needs at least one array")
  if bucket < 1:
    raise ValueError(f"bucket must be >= 1, got {bucket}")
  arrays = [np.asarray(a) for a in arrays]
  tail, dtype = arrays[0].shape[1:], arrays[0].dtype
  for a in arrays:
    if a.ndim < 1 or a.shape[1:] != tail or a.dtype != dtype:
      raise ValueError(f"arrays must share trailing shape and dtype: {a.shape} {a.dtype} vs (T,)+{tail} {dtype}")
  lengths = np.array([a.shape[0] for a in arrays], dtype=np.int32)
  t_pad = bucket * max(1, math.ceil(int(lengths.max()) / bucket))
  out = np.zeros((len(arrays), t_pad) + tail, dtype=dtype)
  for b, a in enumerate(arrays):
    out[b, : a.shape[0]] = a
  return out, lengths
