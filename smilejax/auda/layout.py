"""The AUDA feature layout, its one source (spec auda.md sections 6-11): options, segments, AU pairs, widths, names.

With A = 17 AUs (section 1 order), W windows and P = A (A - 1) / 2 = 136 pairs:

* frame-wise [T, A + 4 W A + 1] = 154 (section 7): AU values; blocks of A for Delta_w, adjusted Delta_w, Delta2_w and
  adjusted Delta2_w (each for every window w, in this order); SI last;
* AU-wise, per segment 3 A + 2 W A = 119 (section 8): amplitude, mean, max (A each); mean Delta and max Delta (A W
  each, AU-major, windows interlaced);
* cross-AU, per segment 4 P W = 1088 (section 9): min and max |Delta_i - Delta_j|, time differences of the largest
  increase and decrease (P W each, pair-major, windows interlaced);
* whole-video vectors: the segments concatenated in ``AudaOptions.segments`` order (section 10).

The index and name helpers at the end describe the default options (the paper's), which the experiment uses.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from smilejax.constants import AU_NAMES, BASE_FPS, NUM_AUS, PHASE_APEX, PHASE_NONE, PHASE_OFFSET, PHASE_ONSET

# Segment name -> phase labels it unites (spec section 6).
SEGMENT_LABELS: dict[str, tuple[int, ...]] = {
  "onset": (PHASE_ONSET,),
  "apex": (PHASE_APEX,),
  "offset": (PHASE_OFFSET,),
  "whole_smile": (PHASE_ONSET, PHASE_APEX, PHASE_OFFSET),
  "whole_sequence": (PHASE_NONE, PHASE_ONSET, PHASE_APEX, PHASE_OFFSET),
}

_TIME_UNITS = ("seconds", "frames")


@functools.lru_cache(maxsize=None)
def au_pairs(n_aus: int = NUM_AUS) -> np.ndarray:
  """The AU pairs (i, j), i < j, in the order of spec section 9 (p = 0 .. n(n-1)/2 - 1): int32 [P, 2], read-only."""
  pairs = np.array([(i, j) for i in range(n_aus) for j in range(i + 1, n_aus)], dtype=np.int32)
  pairs.setflags(write=False)
  return pairs


def pair_index(i: int, j: int, n_aus: int = NUM_AUS) -> int:
  """Index p of the AU pair (i, j), i < j (spec section 9): p = i (2n - 1 - i) / 2 + (j - i - 1) (n = 17: 61 for
  (AU06, AU12) = (4, 8))."""
  if not 0 <= i < j < n_aus:
    raise ValueError(f"pair_index needs 0 <= i < j < {n_aus}, got ({i}, {j})")
  return i * (2 * n_aus - 1 - i) // 2 + (j - i - 1)


@dataclasses.dataclass(frozen=True)
class AudaOptions:
  """AUDA configuration; the defaults are spec section 11. Hashable, so it is a static ``jit`` argument.

  windows: nominal regression windows at ``base_fps`` (scaled per section 2 for other frame rates).
  phase_window: nominal window of the phase detector on the SI (section 5).
  phase_stability: STAB, consecutive frames (never scaled).
  min_smile_seconds: MIN_LEN = round(fps * min_smile_seconds) frames.
  segments: any of ``SEGMENT_LABELS``' names, any count; concatenated in this order (section 10).
  """

  clip_au: bool = False
  windows: tuple[int, ...] = (9, 27)
  base_fps: float = float(BASE_FPS)
  legacy_edge: bool = True
  phase_window: int = 27
  phase_stability: int = 3
  min_smile_seconds: float = 1.0
  segments: tuple[str, ...] = ("onset", "apex", "offset", "whole_smile")
  cross_au_abs: bool = True
  time_unit: str = "seconds"

  def __post_init__(self):
    object.__setattr__(self, "windows", tuple(int(w) for w in self.windows))
    object.__setattr__(self, "segments", tuple(str(s) for s in self.segments))
    if not self.windows or any(w < 3 or w % 2 == 0 for w in self.windows + (int(self.phase_window),)):
      raise ValueError(
        f"AudaOptions windows must be odd integers >= 3 (centred windows), got "
        f"windows={self.windows}, phase_window={self.phase_window}"
      )
    if self.min_smile_seconds < 0 or self.base_fps <= 0:
      raise ValueError(
        f"AudaOptions: min_smile_seconds must be >= 0 and base_fps > 0, got {self.min_smile_seconds}, {self.base_fps}"
      )
    for seg in self.segments:
      if seg not in SEGMENT_LABELS:
        raise ValueError(f"AudaOptions.segments: unknown segment {seg!r} (known: {', '.join(SEGMENT_LABELS)})")
    if not self.segments:
      raise ValueError("AudaOptions.segments must name at least one segment")
    if self.time_unit not in _TIME_UNITS:
      raise ValueError(f"AudaOptions.time_unit must be one of {_TIME_UNITS}, got {self.time_unit!r}")
    if self.phase_stability < 1:
      raise ValueError(f"AudaOptions.phase_stability must be >= 1, got {self.phase_stability}")

  @classmethod
  def from_config(cls, cfg: Any) -> "AudaOptions":
    """From an ``ml_collections.ConfigDict``, a mapping or an ``AudaOptions``; absent keys keep the defaults.

    Unknown keys are an error (a typo must not silently fall back to a default).
    """
    if cfg is None:
      return cls()
    if isinstance(cfg, cls):
      return cfg
    if hasattr(cfg, "to_dict"):
      cfg = cfg.to_dict()
    if not isinstance(cfg, Mapping):
      raise TypeError(f"AudaOptions.from_config expects a ConfigDict or a mapping, got {type(cfg).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - names)
    if unknown:
      raise ValueError(f"unknown AUDA option(s): {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()}
    return cls(**kwargs)

  def replace(self, **changes) -> "AudaOptions":
    return dataclasses.replace(self, **changes)


def scale_window(window: int, fps: float, base_fps: float = float(BASE_FPS)) -> int:
  """Window in frames at ``fps`` (spec section 2): max(3, 2 floor(w fps / base / 2) + 1).

  The nearest odd integer to ``window * fps / base_fps`` (an exact even value rounds up); e.g. 25 fps -> 5, 13;
  30 fps -> 5, 17; 60 fps -> 11, 33; 100 fps -> 19, 55. At ``fps == base_fps`` the window is unchanged.
  """
  if fps <= 0:
    raise ValueError(f"fps must be positive, got {fps}")
  if float(fps) == float(base_fps):
    return int(window)
  return max(3, 2 * int(math.floor(window * float(fps) / float(base_fps) / 2.0)) + 1)


def scaled_windows(options: AudaOptions, fps: float) -> tuple[int, ...]:
  """The regression windows of ``options`` in frames at ``fps`` (spec section 2)."""
  return tuple(scale_window(w, fps, options.base_fps) for w in options.windows)


def feature_dims(options: AudaOptions | None = None, n_aus: int = NUM_AUS) -> dict[str, int]:
  """Feature widths: frame (154), au_wise (476) and cross_au (4352) with the default options."""
  opts = options or AudaOptions()
  nw, ns = len(opts.windows), len(opts.segments)
  n_pairs = n_aus * (n_aus - 1) // 2
  per_seg_au = 3 * n_aus + 2 * n_aus * nw
  per_seg_cross = 4 * n_pairs * nw
  return {
    "frame": n_aus + 4 * nw * n_aus + 1,
    "au_wise_segment": per_seg_au,
    "au_wise": ns * per_seg_au,
    "cross_au_segment": per_seg_cross,
    "cross_au": ns * per_seg_cross,
  }


def phase_labels(options: AudaOptions) -> tuple[int, ...]:
  """The phase labels that the configured segments unite, ascending (section 6)."""
  return tuple(sorted({lab for seg in options.segments for lab in SEGMENT_LABELS[seg]}))


# ----------------------------------------------------------------------------------------------------------------
# Layout of the default options: indices and names (sections 7-10)
# ----------------------------------------------------------------------------------------------------------------

A = NUM_AUS
AU_PAIRS: np.ndarray = au_pairs(NUM_AUS)  # [136, 2]
CROSS_AU_PAIRS: tuple[tuple[int, int], ...] = tuple((int(i), int(j)) for i, j in AU_PAIRS)
_DEFAULT = AudaOptions()
_WINDOWS = _DEFAULT.windows  # nominal windows, as the feature names give them
_NW = len(_WINDOWS)
DEFAULT_SEGMENTS: tuple[str, ...] = _DEFAULT.segments
_DIMS = feature_dims(_DEFAULT)
FRAME_DIM: int = _DIMS["frame"]  # 154
AU_WISE_SEGMENT_DIM: int = _DIMS["au_wise_segment"]  # 119
CROSS_AU_SEGMENT_DIM: int = _DIMS["cross_au_segment"]  # 1088
SI_FRAME_INDEX: int = FRAME_DIM - 1  # 153
# Section 7: the blocks of A columns, in order (Δ̂: r-adjusted, ²: second order).
FRAME_BLOCKS: tuple[str, ...] = ("value",) + tuple(f"{kind}{w}" for kind in ("Δ", "Δ̂", "Δ²", "Δ̂²") for w in _WINDOWS)


def frame_feature_au(index: int) -> int | None:
  """AU index (0-16) of frame-wise feature ``index`` (0-153): index mod 17; None for the SI column 153 (section 7)."""
  if not 0 <= index < FRAME_DIM:
    raise ValueError(f"frame-wise feature index must be in 0..{FRAME_DIM - 1}, got {index}")
  return None if index == SI_FRAME_INDEX else index % A


def frame_feature_names() -> list[str]:
  """Names of the 154 frame-wise features, e.g. 'AU12 Δ̂27' (section 7)."""
  return [f"{AU_NAMES[i % A]} {FRAME_BLOCKS[i // A]}" for i in range(SI_FRAME_INDEX)] + ["SI"]


def au_wise_feature_au(index: int, *, n_segments: int = len(DEFAULT_SEGMENTS)) -> int:
  """AU index of AU-wise feature ``index`` of the whole-video vector (n_segments x 119; sections 8, 10): j = index
  mod 119; a = j mod 17 for amplitude, mean and max (j < 51), else mean / max Delta at 51 + 2a + k / 85 + 2a + k."""
  if not 0 <= index < n_segments * AU_WISE_SEGMENT_DIM:
    raise ValueError(f"AU-wise feature index must be in 0..{n_segments * AU_WISE_SEGMENT_DIM - 1}, got {index}")
  j = index % AU_WISE_SEGMENT_DIM
  if j < 3 * A:
    return j % A
  return ((j - 3 * A) % (A * _NW)) // _NW


def au_wise_feature_names(segments: Sequence[str] = DEFAULT_SEGMENTS) -> list[str]:
  """Names of the AU-wise features, e.g. 'apex: AU12 mean Δ27' (sections 8, 10)."""
  per_segment = [f"{AU_NAMES[a]} {stat}" for stat in ("amplitude", "mean", "max") for a in range(A)] + [
    f"{AU_NAMES[a]} {stat} Δ{w}" for stat in ("mean", "max") for a in range(A) for w in _WINDOWS
  ]
  assert len(per_segment) == AU_WISE_SEGMENT_DIM
  return [f"{s}: {n}" for s in segments for n in per_segment]


def cross_au_feature_pair(index: int, *, n_segments: int = len(DEFAULT_SEGMENTS)) -> tuple[int, int]:
  """AU pair (i, j) of cross-AU feature ``index`` of the whole-video vector (n_segments x 1088; sections 9, 10):
  pair p = (index mod 272) // 2, i.e. four blocks of 136 pairs x 2 windows per segment."""
  if not 0 <= index < n_segments * CROSS_AU_SEGMENT_DIM:
    raise ValueError(f"cross-AU feature index must be in 0..{n_segments * CROSS_AU_SEGMENT_DIM - 1}, got {index}")
  return CROSS_AU_PAIRS[(index % CROSS_AU_SEGMENT_DIM % (len(CROSS_AU_PAIRS) * _NW)) // _NW]


def cross_au_feature_names(segments: Sequence[str] = DEFAULT_SEGMENTS) -> list[str]:
  """Names of the cross-AU features, e.g. 'onset: AU06-AU12 max δΔ9' (sections 9, 10)."""
  kinds = ("min δΔ", "max δΔ", "Δt max increase ", "Δt max decrease ")
  per_segment = [
    f"{AU_NAMES[i]}-{AU_NAMES[j]} {kind}{w}".replace("  ", " ")
    for kind in kinds
    for i, j in CROSS_AU_PAIRS
    for w in _WINDOWS
  ]
  assert len(per_segment) == CROSS_AU_SEGMENT_DIM
  return [f"{s}: {n}" for s in segments for n in per_segment]


def feature_to_au_matrix(kind: str, n_features: int | None = None) -> np.ndarray:
  """M [D, 17]: per-AU attribution = a_D @ M. kind: "frame" (D = 154; SI row all zero), "au_wise"
  (D = k x 119: one 1 per row), "cross_au" (D = k x 1088: 0.5 at each AU of the row's pair)."""
  if kind == "frame":
    d = FRAME_DIM if n_features is None else n_features
    if d != FRAME_DIM:
      raise ValueError(f"frame-wise features have {FRAME_DIM} columns, got {d}")
    m = np.zeros((d, A))
    for i in range(SI_FRAME_INDEX):
      m[i, frame_feature_au(i)] = 1.0
    return m
  if kind == "au_wise":
    d = AU_WISE_SEGMENT_DIM * len(DEFAULT_SEGMENTS) if n_features is None else n_features
    if d % AU_WISE_SEGMENT_DIM:
      raise ValueError(f"AU-wise vector length must be a multiple of {AU_WISE_SEGMENT_DIM}, got {d}")
    m = np.zeros((d, A))
    m[np.arange(d), [au_wise_feature_au(i, n_segments=d // AU_WISE_SEGMENT_DIM) for i in range(d)]] = 1.0
    return m
  if kind == "cross_au":
    d = CROSS_AU_SEGMENT_DIM * len(DEFAULT_SEGMENTS) if n_features is None else n_features
    if d % CROSS_AU_SEGMENT_DIM:
      raise ValueError(f"cross-AU vector length must be a multiple of {CROSS_AU_SEGMENT_DIM}, got {d}")
    m = np.zeros((d, A))
    pairs = np.array([cross_au_feature_pair(i, n_segments=d // CROSS_AU_SEGMENT_DIM) for i in range(d)])
    m[np.arange(d), pairs[:, 0]] += 0.5
    m[np.arange(d), pairs[:, 1]] += 0.5
    return m
  raise ValueError(f"kind must be 'frame', 'au_wise' or 'cross_au', got {kind!r}")
