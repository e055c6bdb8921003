"""AUDA: action-unit dynamics features (normative spec: ../shared/spec/auda.md).

Pipeline (spec, top): 17 AU intensity series + the smile-intensity (SI) series -> sliding-window regression
(omega = 9, 27 frames at 50 fps) -> 154 frame-wise features -> phase detection on the SI -> segments -> AU-wise
(119 per segment) and cross-AU (1088 per segment) -> whole-video vectors (476 and 4352).

Public functions (all pure functions of arrays; static shapes; ``jit`` / ``vmap`` compatible where noted):

* :func:`trend`, :func:`dynamics`, :func:`second_order_trend`: the regression of any series [..., T], T >= 1, with an
  optional real ``length`` for padded series (jit, vmap and grad safe).
* :func:`detect_phases`, :func:`detect_phases_batch`: the original phase detector (section 5), a ``lax.scan``.
* :func:`compute_features`: all features of a padded batch with given phases, one traceable function.
* :func:`extract`, :func:`frame_features`, :func:`au_wise_features`, :func:`cross_au_features`: one video, validated.
* :func:`extract_batch`: many padded videos (validation, float64 phases, features in chunks of similar length).

Numerics (spec section 2):

* every window is computed with the two-pass form (window mean first, then centred sums), as a fixed "convolution"
  of ``omega`` shifted slices of the edge-padded series -- no running sums, which lose digits; the float32 fast path
  centres its sums on the window's middle sample instead of the mean (one pass, see :func:`_regress_centred`);
* a constant window is detected exactly, as "no two neighbouring samples in the window differ" (equivalent to
  max == min; the change count is a sum of 0/1 flags), never by ``S_vv == 0``: then r := 1 and delta := 0; the
  float32 fast path tests "every sample equals the middle one" instead (sum (v_k - v_c)^2 == 0, exact for samples
  that are 0 or at least 2^-38 in magnitude, see :func:`_regress_centred`);
* divisions and square roots are guarded with ``where`` so that values *and gradients* are finite everywhere;
* XLA may contract a multiply and an add into one fused multiply-add and turn divisions into multiplications by a
  reciprocal, so results could differ from a plain sequential evaluation in the last bit -- which matters where two
  slopes are mathematically equal (ties, common on quantised series) and the spec breaks ties by position. The
  phase detector and the float64 features therefore evaluate bitwise like the sequential reference (see
  ``_regress``); the float32 fast path does not (there a tie may fall on a neighbouring frame).

Precision: the phase detector compares slopes exactly, so it always runs on float64. The concrete-array entry points
(:func:`detect_phases`, :func:`detect_phases_batch`, :func:`extract`, :func:`extract_batch`) call a separately jitted
function inside the thread-local context manager ``jax.enable_x64(True)``; the global ``jax_enable_x64`` flag is
never changed, so the rest of the program keeps its own precision. The features are computed in the input precision
(float32 by default; float64 when the caller enables x64). On tracers (inside a caller's ``jit``), the phase
detector computes in the dtype of its input: use the concrete entry points, or enable x64, for exact phases.

Speed (benchmarks/README.md): the batched path sorts videos by length, pads each chunk's time axis to a multiple of
``bucket`` frames, regresses the time-major series (so the frame-wise features need no transpose), and computes
segment statistics over the smile frames only (each phase label's frames packed into rows of 32 "slots", so that
they are plain reductions instead of masked ones over the whole sequence, with little padding). The slots are
gathered slot-major ([slots, B, rows, channels]: whole rows of the series, no reorder), so that the AU-wise and
arg-extreme statistics are k-ary trees of element-wise operations over the major slot axis (:func:`_reduce_major`);
XLA:CPU's own reductions run one element at a time (over a major axis with a strided walk, ~10 ns per element here).
The cross-AU min / max transposes Delta so that the chunk's videos are on the minor axis and takes each circulant
shift's pair differences as unrolled element-wise chains over the slots (see :func:`_segments_core`).
Chunks are small (16 videos by default): the statistics' intermediates then stay in this CPU's caches.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from smilejax.constants import (BASE_FPS, NUM_AUS, PHASE_APEX, PHASE_NONE, PHASE_OFFSET, PHASE_ONSET)
from smilejax.errors import InputError

__all__ = [
    "AudaOptions", "AudaFeatures", "AudaFeaturesBatch", "Dynamics", "SEGMENT_LABELS",
    "scale_window", "scaled_windows", "trend", "second_order_trend", "dynamics",
    "detect_phases", "detect_phases_batch", "frame_features", "au_wise_features", "cross_au_features",
    "extract", "extract_batch", "compute_features", "feature_dims", "pair_index", "AU_PAIRS",
]

# Segment name -> phase labels it unites (spec section 6).
SEGMENT_LABELS: dict[str, tuple[int, ...]] = {
    "onset": (PHASE_ONSET,),
    "apex": (PHASE_APEX,),
    "offset": (PHASE_OFFSET,),
    "whole_smile": (PHASE_ONSET, PHASE_APEX, PHASE_OFFSET),
    "whole_sequence": (PHASE_NONE, PHASE_ONSET, PHASE_APEX, PHASE_OFFSET),
}

# The 136 AU pairs (i, j), i < j, in the order of spec section 9: p = i (33 - i) / 2 + (j - i - 1).
AU_PAIRS: np.ndarray = np.array([(i, j) for i in range(NUM_AUS) for j in range(i + 1, NUM_AUS)], dtype=np.int32)


def pair_index(i: int, j: int, n_aus: int = NUM_AUS) -> int:
    """Index p of the AU pair (i, j), i < j (spec section 9): p = i (2n - 1 - i) / 2 + (j - i - 1)."""
    if not 0 <= i < j < n_aus:
        raise ValueError(f"pair_index needs 0 <= i < j < {n_aus}, got ({i}, {j})")
    return i * (2 * n_aus - 1 - i) // 2 + (j - i - 1)


# ----------------------------------------------------------------------------------------------------------------
# Options (spec section 11)
# ----------------------------------------------------------------------------------------------------------------

_TIME_UNITS = ("seconds", "frames")


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
            raise ValueError(f"AudaOptions windows must be odd integers >= 3 (centred windows), got "
                             f"windows={self.windows}, phase_window={self.phase_window}")
        if self.min_smile_seconds < 0 or self.base_fps <= 0:
            raise ValueError(f"AudaOptions: min_smile_seconds must be >= 0 and base_fps > 0, got "
                             f"{self.min_smile_seconds}, {self.base_fps}")
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


def _resolve_options(options: Any, overrides: Mapping[str, Any]) -> AudaOptions:
    opts = AudaOptions.from_config(options)
    return opts.replace(**overrides) if overrides else opts


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
    return tuple(scale_window(w, fps, options.base_fps) for w in options.windows)


def feature_dims(options: AudaOptions | None = None, n_aus: int = NUM_AUS) -> dict[str, int]:
    """Feature widths: frame (154), au_wise (476) and cross_au (4352) with the default options."""
    opts = options or AudaOptions()
    nw, ns = len(opts.windows), len(opts.segments)
    n_pairs = n_aus * (n_aus - 1) // 2
    per_seg_au = 3 * n_aus + 2 * n_aus * nw
    per_seg_cross = 4 * n_pairs * nw
    return {"frame": n_aus + 4 * nw * n_aus + 1, "au_wise_segment": per_seg_au, "au_wise": ns * per_seg_au,
            "cross_au_segment": per_seg_cross, "cross_au": ns * per_seg_cross}


# ----------------------------------------------------------------------------------------------------------------
# Sliding-window regression (spec sections 2-3)
# ----------------------------------------------------------------------------------------------------------------

class Dynamics(NamedTuple):
    """First- and second-order dynamics of one series (each [..., T])."""
    delta: jax.Array
    r: jax.Array
    delta_adj: jax.Array
    delta2: jax.Array
    r2: jax.Array
    delta2_adj: jax.Array


def _lengths_for(x: jax.Array, length) -> jax.Array:
    """Per-series real length, broadcast to x.shape[:-1] (int32, at least 1)."""
    t_len = x.shape[-1]
    if length is None:
        return jnp.full(x.shape[:-1], t_len, dtype=jnp.int32)
    length = jnp.asarray(length, dtype=jnp.int32)
    return jnp.broadcast_to(jnp.clip(length, 1, t_len), x.shape[:-1])


def _edge_padded(x: jax.Array, h: int, length: jax.Array, legacy_edge: bool) -> jax.Array:
    """The effective series x'[k], k = -h .. T+h-1, as an array [..., T + 2h] (spec section 3).

    legacy:  x'[k] = x[L-1] for k >= L-h (this wins, as in the original, where it is written last),
             x[0] for k < 0, x[k] otherwise;
    plain:   x'[k] = x[0] for k < 0, x[L-1] for k >= L, x[k] otherwise.
    L is the series' real length, so a padded series gives exactly the values of its unpadded prefix.
    """
    t_len = x.shape[-1]
    k = jnp.arange(-h, t_len + h, dtype=jnp.int32)
    xpad = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(h, h)])
    first = x[..., :1]
    last = jnp.take_along_axis(x, (length - 1)[..., None], axis=-1)
    lim = (length - h if legacy_edge else length)[..., None]
    return jnp.where(k >= lim, last, jnp.where(k < 0, first, xpad))


def _keep(x: jax.Array, one: jax.Array | None) -> jax.Array:
    """``x / one`` with ``one`` a runtime 1.0: numerically the identity (IEEE division by 1 is exact), but XLA treats a
    floating division as expensive and does not duplicate it into every consumer fusion, so an intermediate that many
    window slices read (the padded series, the window means, the sums) is computed once instead of once per slice.
    Floating arrays only (integer ones are carried as floats where this matters, see :func:`_cum_extreme`). A
    performance hint only; with ``one=None`` it is a no-op."""
    return x if one is None else x / one.astype(x.dtype)


def _regress(xp: jax.Array, t_len: int, window: int, one=None, separate_products: bool = False, *,
             stride: int = 1, need_r: bool = True):
    """Two-pass least squares on every window of the padded series: returns (delta, r) [..., T].

    Window of frame t = xp[t : t + window]; abscissae 0..w-1, t_bar = (w-1)/2; S_tt = w (w^2 - 1) / 12.
    mean first, then S_tv = sum (j - t_bar)(v_j - mean), S_vv = sum (v_j - mean)^2;
    delta = S_tv / S_tt, r = S_tv / sqrt(S_tt S_vv); constant window (all samples equal): delta = 0, r = 1.
    The window is a fixed set of ``window`` shifted slices, i.e. a convolution with a fixed kernel.

    ``separate_products``: round every product before it is added, as a plain sequential evaluation does (XLA may
    otherwise contract ``s + a * b`` into one fused multiply-add). Passing the product through a select that the
    compiler cannot drop (``where(p == p, p, 0)``: p may be NaN as far as it knows) achieves it: the multiply then
    feeds a select, not an add, so it is never contracted. With it, and true divisions for the
    mean, the slope and r (see ``unit`` below), the slopes are bitwise those of a sequential evaluation (the NumPy
    reference, the original program), so mathematically tied slopes stay tied: the phase detector (section 5) and
    the cross-AU arg-extremes (section 9) break ties by position. Used for the phases and for float64 features; the
    float32 fast path does without it. (Checked: on 70k windows of random and quantised series the slopes are bitwise
    those of a sequential NumPy evaluation with the select, and differ in 24780 of them without it; a division by an
    array of ones, used before, does the same at a division per term: phases 5 % slower.)

    ``stride``: the series is time-major with ``stride`` interleaved channels flattened into the last axis (element
    ``t * stride + c``), so that window slice j is the contiguous slice starting at ``j * stride`` and the result is
    already in [.., T, C] order (no transpose of the frame-wise features); ``t_len`` counts frames. The arithmetic per
    element is the same as with ``stride=1``. ``need_r=False`` (the phase detector): skip S_vv, return (delta, None).
    """
    tbar = (window - 1) / 2.0
    n_out = t_len * stride
    cols = [xp[..., j * stride:j * stride + n_out] for j in range(window)]
    total = cols[0]
    for c in cols[1:]:
        total = total + c
    if separate_products:
        # XLA turns a division by a scalar (even a runtime one) into a multiplication by its rounded reciprocal,
        # which is not always the same number; a divisor that is an element-wise array (1 + 0 |total| = 1 for
        # finite data, which the compiler may not simplify) keeps the true division of a sequential evaluation.
        unit = 1.0 + 0.0 * jnp.abs(total)
        w_div = window * unit
    else:
        unit, w_div = 1.0, window
    mean = _keep(total / w_div, one)
    s_tv = jnp.zeros_like(mean)
    s_vv = jnp.zeros_like(mean)
    # the product rounded on its own: a select in between, so it never contracts into a fused multiply-add
    rounded = (lambda p: jnp.where(p == p, p, 0.0)) if separate_products else (lambda p: p)
    for j, c in enumerate(cols):
        dv = c - mean
        if j != tbar:  # (j - t_bar) = 0 adds an exact zero
            s_tv = s_tv + rounded((j - tbar) * dv)
        if need_r:
            s_vv = s_vv + rounded(dv * dv)
    return _slope_and_r(xp, s_tv, s_vv if need_r else None, window, n_out, one, stride=stride, unit=unit)


def _slope_and_r(xp, s_tv, s_vv, window: int, n_out: int, one=None, *, stride: int = 1, unit=1.0, changes=None):
    """delta = S_tv / S_tt and r = S_tv / sqrt(S_tt S_vv) from a window's centred sums, with the exact constant-window
    rule (r := 1, delta := 0); ``s_vv=None``: (delta, None). ``unit`` (:func:`_regress`, ``separate_products``): an
    array of ones that divisors are multiplied by, so XLA keeps true divisions. ``changes``: a non-negative array that
    is 0 exactly on the constant windows (:func:`_regress_centred`); by default the change count below."""
    s_tt = window * (window * window - 1) / 12.0
    s_tv = _keep(s_tv, one)
    if changes is None:
        # Constant window (the exact test "max == min") <=> no two neighbouring samples differ: count the changes in
        # the window's w - 1 neighbour pairs, a box sum of 0/1 flags (exact) built by doubling (log2 w passes, not w).
        flags = (xp[..., stride:] != xp[..., :-stride]).astype(xp.dtype)
        changes = _box_sum(_keep(flags, one), window - 1, n_out, one, stride=stride)
    if s_vv is None:  # the same delta as below, without S_vv and r
        return jnp.where(changes > 0, s_tv / (s_tt * unit), 0.0).astype(xp.dtype), None
    # One stored array carries both S_vv (>= 0) and the constant flag (-1), so the flag is computed only once.
    key = _keep(jnp.where(changes > 0, s_vv, -1.0), one)
    constant = key < 0
    s_vv = jnp.maximum(key, 0.0)
    positive = s_vv > 0
    # Guarded division: a finite value and gradient on constant (and underflowed) windows.
    # (times ``unit``: XLA would otherwise evaluate a / sqrt(b) as a * rsqrt(b), not correctly rounded)
    denom = jnp.sqrt(s_tt * jnp.where(positive, s_vv, 1.0)) * unit
    r = jnp.where(constant, 1.0, jnp.where(positive, s_tv / denom, 0.0)).astype(xp.dtype)
    delta = jnp.where(constant, 0.0, s_tv / (s_tt * unit)).astype(xp.dtype)
    return delta, r


def _regress_centred(xp: jax.Array, t_len: int, window: int, one=None, *, stride: int = 1):
    """The float32 fast path of :func:`_regress` (same arguments and results up to rounding): sums centred on the
    window's middle sample v_c instead of its mean, so nothing waits for a mean and each sample is read once.

    With e_k = v_{c+k} - v_c (k = -h .. h): S_tv = sum_k k (v_{c+k} - v_{c-k}) over k = 1 .. h (the abscissae sum to
    zero, so the centre drops out), S_vv = sum e_k^2 - (sum e_k)^2 / w (the shifted-data form: v_c lies
    in the window, so |e_k| <= the window's range and the cancellation costs at most ~w ulps of S_vv). About half the
    operations of the two-pass form.

    Constant-window rule: the window is constant iff sum e_k^2 == 0 -- a sum of non-negative terms, 0 iff every
    e_k^2 is, i.e. iff every sample equals v_c, as long as no non-zero e_k^2 underflows (|e_k| >= 2^-63; XLA:CPU
    flushes subnormals to zero). That holds whenever every sample of the window is 0 or at least 2^-38 (3.6e-12) in
    magnitude (two different such float32 numbers differ by at least 2^-62). The sum is already there, so the test
    costs nothing; the change count of :func:`_slope_and_r` (which the float64 path keeps) cost 8 % of the dynamics
    (micro, 16 videos: 0.209 -> 0.193 ms/video without it; benchmarks/README.md).
    """
    h = window // 2
    n_out = t_len * stride
    col = lambda j: xp[..., j * stride:j * stride + n_out]
    mid = col(h)
    s1 = s2 = s_tv = None
    for k in range(1, h + 1):
        ep, em = col(h + k) - mid, col(h - k) - mid
        s1 = ep + em if s1 is None else s1 + ep + em
        s2 = ep * ep + em * em if s2 is None else s2 + ep * ep + em * em
        dk = col(h + k) - col(h - k)  # = ep - em, one operation fewer (and no rounding of ep, em in it)
        s_tv = k * dk if s_tv is None else s_tv + k * dk
    return _slope_and_r(xp, s_tv, jnp.maximum(s2 - s1 * s1 / window, 0.0), window, n_out, one, stride=stride,
                        changes=s2)


def _box_sum(a: jax.Array, width: int, n_out: int, one=None, *, stride: int = 1) -> jax.Array:
    """sum(a[..., t : t + width]) for t < n_out, by doubling: partial sums over 1, 2, 4, ... samples, then at most
    log2(width) of them. Exact for small-integer data (the change counts); for general data a different summation
    order than a running sum, which is why the regression's window mean does not use it. ``stride``: samples are
    ``stride`` elements apart (time-major interleaved channels, see :func:`_regress`); ``n_out`` counts elements."""
    levels = {1: a}
    size = 1
    while 2 * size <= width:
        prev = levels[size]
        n = prev.shape[-1] - size * stride
        levels[2 * size] = _keep(prev[..., :n] + prev[..., size * stride:size * stride + n], one)
        size *= 2
    total, offset = None, 0
    for size in sorted(levels, reverse=True):
        if width - offset >= size:
            part = levels[size][..., offset * stride:offset * stride + n_out]
            total = part if total is None else total + part
            offset += size
    return total


def _runtime_one(lengths: jax.Array) -> jax.Array:
    """A 1.0 that XLA cannot constant-fold (derived from the lengths): see :func:`_keep`."""
    return jnp.where(jnp.min(lengths) > -1, 1.0, 2.0)


def _trend(x, window: int, length, legacy_edge: bool, one=None, separate_products: bool = False,
           need_r: bool = True):
    t_len = x.shape[-1]
    h = window // 2
    xp = _keep(_edge_padded(x, h, length, legacy_edge), one)
    delta, r = _regress(xp, t_len, window, one, separate_products, need_r=need_r)
    real = jnp.arange(t_len) < length[..., None]
    delta = jnp.where(real, delta, 0.0)
    if not need_r:
        return delta, None, None
    r = jnp.where(real, r, 0.0)
    return delta, r, delta * jnp.abs(r)


def _trend_time_major(x_BxTxC, window: int, lengths_B, legacy_edge: bool, one=None,
                      separate_products: bool = False):
    """:func:`_trend` of C series stored time-major, x [B, T, C] (regressed along T): (delta, r, delta_adj) [B, T, C].

    The edge-padded series [B, T + 2h, C] is flattened to [B, (T + 2h) C], so every window slice is one contiguous
    slice (see ``stride`` in :func:`_regress`) and the results come out in the frame-wise features' [B, T, .] order.
    Per element the arithmetic is that of :func:`_trend`, so the values are the same (bitwise in float64).
    """
    b, t_len, n_c = x_BxTxC.shape
    h = window // 2
    first = x_BxTxC[:, :1]
    last = jnp.take_along_axis(x_BxTxC, jnp.broadcast_to((lengths_B - 1)[:, None, None], (b, 1, n_c)), axis=1)
    # A real frame's window reads x'[k] for k < L + h only: the zero-padded series with the first value written over
    # the h frames before it and then (it wins) the last value over k = L - h .. L + h - 1 (legacy; L .. L + h - 1
    # otherwise), per video. Frames beyond hold zeros, which no real frame reads. (Selects over the whole padded
    # series with first / last broadcast along time cost a per-element channel look-up: dynamics 0.159 -> 0.134
    # ms/video without them, 16 videos.)
    xp = jnp.pad(x_BxTxC, ((0, 0), (h, h), (0, 0)))
    xp = lax.dynamic_update_slice(xp, jnp.broadcast_to(first, (b, h, n_c)), (0, 0, 0))
    n_last, start = (2 * h, lengths_B) if legacy_edge else (h, lengths_B + h)   # start in padded frames: k + h
    xp = jax.vmap(lambda a, v, s0: lax.dynamic_update_slice(a, jnp.broadcast_to(v, (n_last, n_c)), (s0, 0 * s0)))(
        xp, last, start).reshape(b, (t_len + 2 * h) * n_c)
    if separate_products:
        delta, r = _regress(_keep(xp, one), t_len, window, one, separate_products, stride=n_c)
    else:
        delta, r = _regress_centred(_keep(xp, one), t_len, window, one, stride=n_c)
    real = (jnp.arange(t_len) < lengths_B[:, None])[:, :, None]
    delta = jnp.where(real, delta.reshape(b, t_len, n_c), 0.0)
    r = jnp.where(real, r.reshape(b, t_len, n_c), 0.0)
    return delta, r, delta * jnp.abs(r)


def _check_window(window) -> int:
    window = int(window)
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 3 (a centred window), got {window}")
    return window


def trend(x, *, window: int, legacy_edge: bool = True, length=None):
    """Centred sliding-window regression of a series (spec sections 2-3): ``(delta, r, delta_adj)``.

    Args:
      x: [T] (or [..., T], regressed along the last axis), any T >= 1; float32 or float64.
      window: odd window in frames (already scaled to the frame rate, see :func:`scale_window`).
      legacy_edge: True reproduces the original program's edge rule (section 3), False is replicate padding.
      length: optional real length(s) L (scalar or [...]) of a padded series: the edge rule is applied at L and
        frames t >= L get delta = r = delta_adj = 0, so the first L values equal those of ``x[:L]``.

    Returns:
      delta = S_tv / S_tt (slope per frame), r = S_tv / sqrt(S_tt S_vv) (r := 1 and delta := 0 on a constant window),
      delta_adj = delta * |r|; each with the shape of x.
    """
    x = _as_series(x)
    return _trend_jit(x, _lengths_for(x, length), window=_check_window(window), legacy_edge=bool(legacy_edge))


def dynamics(x, *, window: int, legacy_edge: bool = True, length=None) -> Dynamics:
    """First and second order (spec section 2): the second pass regresses the raw delta series with the same window
    and edge rule; delta2_adj = delta2 * |r2| (r of the second regression). Arguments as :func:`trend`."""
    x = _as_series(x)
    return _dynamics_jit(x, _lengths_for(x, length), window=_check_window(window), legacy_edge=bool(legacy_edge))


def _as_series(x) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"trend needs a series of length >= 1, got shape {x.shape}")
    return x


# Jitted (also when called eagerly: one compilation per shape instead of one per primitive); inside a caller's jit
# or vmap they are simply traced through.
@functools.partial(jax.jit, static_argnames=("window", "legacy_edge"))
def _trend_jit(x, lengths, *, window, legacy_edge):
    return _trend(x, window, lengths, legacy_edge, _runtime_one(lengths))


@functools.partial(jax.jit, static_argnames=("window", "legacy_edge"))
def _dynamics_jit(x, lengths, *, window, legacy_edge):
    one = _runtime_one(lengths)
    d, r, da = _trend(x, window, lengths, legacy_edge, one)
    d2, r2, d2a = _trend(d, window, lengths, legacy_edge, one)
    return Dynamics(d, r, da, d2, r2, d2a)


def second_order_trend(x, *, window: int, legacy_edge: bool = True, length=None):
    """Second-order dynamics ``(delta2, r2, delta2_adj)``: :func:`trend` applied to the raw delta of ``x``."""
    dyn = dynamics(x, window=window, legacy_edge=legacy_edge, length=length)
    return dyn.delta2, dyn.r2, dyn.delta2_adj


# ----------------------------------------------------------------------------------------------------------------
# Phase detection (spec section 5)
# ----------------------------------------------------------------------------------------------------------------

def _shift(a: jax.Array, i: int, fill) -> jax.Array:
    """a[..., k + i] along the last axis (i < 0 looks back), ``fill`` outside."""
    if i == 0:
        return a
    pad = jnp.full(a.shape[:-1] + (abs(i),), fill, a.dtype)
    if i > 0:
        return jnp.concatenate([a[..., i:], pad], axis=-1)
    return jnp.concatenate([pad, a[..., :i]], axis=-1)


def _cum_extreme(a: jax.Array, op, fill, *, reverse: bool = False, one=None) -> jax.Array:
    """Running min / max along the last axis (``op`` = jnp.minimum / jnp.maximum; from the end with ``reverse``), by
    doubling: log2(T) element-wise passes over shifted copies. Exact (min / max are idempotent); XLA:CPU's
    ``cummin`` / ``cummax`` (a reduce-window) is several times slower here. ``one`` (see :func:`_keep`): each pass is
    materialised -- otherwise XLA fuses the passes into one loop that re-evaluates every earlier pass twice per pass
    (2^log2(T) = T reads per element). Integer input is carried as floats for that (exact below 2^24)."""
    dtype = a.dtype
    if one is not None and not jnp.issubdtype(dtype, jnp.floating):
        a = a.astype(one.dtype)
    step = 1
    while step < a.shape[-1]:
        a = _keep(op(a, _shift(a, step if reverse else -step, fill)), one)
        step *= 2
    return a.astype(dtype)


def _phases_core(v_BxT: jax.Array, lengths_B: jax.Array, *, window: int, legacy_edge: bool, stab: int,
                 min_len: int) -> jax.Array:
    """Phase labels of a batch of padded SI series v [B, T] with real lengths [B] (spec section 5).

    Restates the original's loops as one forward ``lax.scan`` over the frames (vectorised over the batch) plus
    vectorised look-ups; d = Delta and dd = Delta^2 of v (raw, edge rule at each real length):

    * (a) start: ``pos3[k]`` = d[k .. k+STAB-1] all > 0 inside the series. The first candidate starts at the first
      such k. After a candidate ends (``run == STAB`` at frame k: a renewed rise p .. k, p = k-STAB+1, end = p-1), the
      original's next start search from ``end`` finds p itself: d[end] <= 0 (end is the frame where ``falling`` began,
      which has d < 0, or a frame that reset the run), and pos3[p] holds. Its scan over p .. k only sees d > 0, so the
      scan opens the next candidate at the closing step with the extremes of those frames precomputed (``fold_*``).
    * (b) the forward scan: running extremes (first one on ties), peak and mid = (v[s] + peak) / 2 (equal to the
      original's mid, which starts at v[s]), falling, run -- the carry of the scan. A candidate still open at the last
      real frame ends at N.
    * (c) guard, (f) tie, (g) validity as in the spec; (d) apex = first j in [rise, fall-2] with dd[j] < dd[j+1]
      (else s) and (e) off = 1 + last k in [rise+1, fall-2] with dd[k+1] < dd[k] (else -1) are suffix-min / prefix-max
      index tables looked up once per candidate.
    * labels: a candidate closed at step k has end - 1 = k - STAB - 1, a static shift; frame t belongs to the first
      candidate whose end exceeds t (a suffix minimum), or to the final one, if its start is <= t.
    """
    b, t_len = v_BxT.shape
    lengths = jnp.clip(lengths_B.astype(jnp.int32), 1, t_len)
    one = _runtime_one(lengths)
    # raw slopes only: no S_vv / r (the constant-window rule still applies: delta := 0)
    d, _, _ = _trend(v_BxT, window, lengths, legacy_edge, one, separate_products=True, need_r=False)
    dd, _, _ = _trend(d, window, lengths, legacy_edge, one, separate_products=True, need_r=False)
    f = v_BxT.dtype
    tt = jnp.arange(t_len, dtype=jnp.int32)
    real = tt < lengths[:, None]
    big = t_len + stab + 2  # "no such frame"
    pos = (d > 0) & real
    pos3 = pos
    for i in range(1, stab):
        pos3 = pos3 & _shift(pos, i, False)

    # Extremes of the STAB frames p = k-STAB+1 .. k (all d > 0) folded into the candidate opened at p.
    fold_best = _shift(d, -(stab - 1), 0.0)
    fold_rise = jnp.broadcast_to((tt - (stab - 1)).astype(f), (b, t_len))
    fold_peak = _shift(v_BxT, -(stab - 1), 0.0)
    fold_vs = fold_peak
    for i in range(1, stab):
        di = _shift(d, -(stab - 1 - i), 0.0)
        better = di > fold_best
        fold_best = jnp.where(better, di, fold_best)
        fold_rise = jnp.where(better, (tt - (stab - 1) + i).astype(f), fold_rise)
        fold_peak = jnp.maximum(fold_peak, _shift(v_BxT, -(stab - 1 - i), 0.0))

    # The first candidate opens at the first pos3 frame s0 (known before the scan); scanning s0 itself changes
    # nothing but best_up / rise (d[s0] > 0: peak stays v[s0], no fall, not falling).
    s0 = jnp.min(jnp.where(pos3, tt, big), axis=1)
    has0 = s0 < lengths
    v_s0 = jnp.take_along_axis(v_BxT, jnp.clip(s0, 0, t_len - 1)[:, None], axis=1)[:, 0]
    d_s0 = jnp.take_along_axis(d, jnp.clip(s0, 0, t_len - 1)[:, None], axis=1)[:, 0]
    zero = jnp.zeros((b,), f)
    # carry: s, vs = v[s], best_up, rise, best_down, fall, peak, fr = run while falling (-1 before): one number
    # for both, so that "close" is a single comparison.
    init = (jnp.where(has0, s0, big).astype(f), v_s0, jnp.where(has0, d_s0, 0.0), s0.astype(f), zero, zero - 1,
            v_s0, zero - 1)
    # One [T, B, 8] array of per-frame inputs: a physical transpose, so that each step reads contiguous memory (XLA
    # would otherwise keep the [B, T] layout and read a strided column per step).
    xs = jnp.stack([jnp.broadcast_to(tt.astype(f), (b, t_len)), d, v_BxT, real.astype(f), fold_best, fold_rise,
                    fold_peak, fold_vs], axis=0)
    xs = _keep(jnp.transpose(xs, (2, 0, 1)), one)                      # [T, 8, B]
    one_f = one.astype(f)

    def step(c, x):
        k, dk, vk, ok, f_best, f_rise, f_peak, f_vs = (x[i] for i in range(8))
        s, vs, best_up, rise, best_down, fall, peak, fr = c
        proc = (ok > 0) & (k > s)
        up = proc & (dk > best_up)
        down = proc & (dk < best_down)
        peak_n = jnp.where(proc, jnp.maximum(peak, vk), peak)
        mid = (vs + peak_n) / 2
        falling = (fr >= 0) | (proc & (vk < mid) & (dk < 0))
        fr_n = _keep(jnp.where(proc & falling, jnp.where(dk > 0, jnp.maximum(fr, 0.0) + 1.0, 0.0), fr), one_f)
        close = fr_n == stab
        record = (close, s, jnp.where(up, k, rise), jnp.where(down, k, fall))  # end = k - STAB
        # the next candidate opens at p = k - STAB + 1 and has already scanned p .. k
        s_n = jnp.where(close, k - (stab - 1), s)
        vs_n = jnp.where(close, f_vs, vs)
        best_up_n = jnp.where(close, f_best, jnp.where(up, dk, best_up))
        rise_n = jnp.where(close, f_rise, jnp.where(up, k, rise))
        best_down_n = jnp.where(close, 0.0, jnp.where(down, dk, best_down))
        fall_n = jnp.where(close, -1.0, jnp.where(down, k, fall))
        peak_n = jnp.where(close, f_peak, peak_n)
        fr_n = jnp.where(close, -1.0, fr_n)
        return (s_n, vs_n, best_up_n, rise_n, best_down_n, fall_n, peak_n, fr_n), record

    last, (closed, c_s, c_rise, c_fall) = lax.scan(step, init, xs, unroll=_SCAN_UNROLL)
    # candidate closed at step k -> indexed at its last frame end - 1 = k - STAB - 1
    closed, c_s, c_rise, c_fall = (_shift(jnp.swapaxes(a, 0, 1), stab + 1, fill)
                                   for a, fill in ((closed, False), (c_s, -1.0), (c_rise, -1.0), (c_fall, -1.0)))
    c_s, c_rise, c_fall = (a.astype(jnp.int32) for a in (c_s, c_rise, c_fall))
    c_end = tt + 1
    f_s, f_rise, f_fall = (last[i].astype(jnp.int32) for i in (0, 3, 5))
    final_open = f_s < lengths

    # (d)/(e) tables
    up_knee = (dd < _shift(dd, 1, 0.0)) & (tt + 1 < lengths[:, None])
    next_up = _cum_extreme(jnp.where(up_knee, tt, big), jnp.minimum, big, reverse=True, one=one)
    down_knee = (_shift(dd, 1, 0.0) < dd) & (tt + 1 < lengths[:, None])
    prev_down = _cum_extreme(jnp.where(down_knee, tt, -1), jnp.maximum, -1, one=one)

    def boundaries(s, end, rise, fall):
        """(apex, off, valid) of candidates with these fields (any common shape [B, ...])."""
        def lookup(table, k, default):
            idx = jnp.clip(k, 0, t_len - 1).reshape(b, -1)
            got = jnp.take_along_axis(table, idx, axis=1).reshape(k.shape)
            return jnp.where((k >= 0) & (k < t_len), got, default)
        j = lookup(next_up, rise, big)
        apex = jnp.where((rise >= 0) & (j <= fall - 2), j, s)
        kk = lookup(prev_down, fall - 2, -1)
        off = jnp.where((fall - 2 >= 0) & (kk >= rise + 1), kk + 1, -1)
        tie = apex == off
        later = apex - rise > fall - apex
        apex, off = jnp.where(tie & later, rise, apex), jnp.where(tie & ~later, fall, off)
        valid = (fall >= 0) & (s < apex) & (apex < off) & (off < end) & (end - s >= min_len)
        return apex, off, valid

    c_apex, c_off, c_valid = boundaries(c_s, c_end, c_rise, c_fall)
    c_valid = c_valid & closed
    fe = lengths[:, None]
    f_apex, f_off, f_valid = boundaries(f_s[:, None], fe, f_rise[:, None], f_fall[:, None])
    f_valid = f_valid & final_open[:, None]

    # frame t -> first closed candidate with end - 1 >= t, else the final one
    owner = _cum_extreme(jnp.where(closed, tt, big), jnp.minimum, big, reverse=True, one=one)
    has = owner < big
    idx = jnp.clip(owner, 0, t_len - 1)
    take = lambda a: jnp.take_along_axis(a, idx, axis=1)
    s_t = jnp.where(has, take(c_s), f_s[:, None])
    apex_t = jnp.where(has, take(c_apex), f_apex)
    off_t = jnp.where(has, take(c_off), f_off)
    valid_t = jnp.where(has, take(c_valid), f_valid)
    inside = valid_t & (tt >= s_t) & real
    label = jnp.where(tt < apex_t, PHASE_ONSET, jnp.where(tt < off_t, PHASE_APEX, PHASE_OFFSET))
    return jnp.where(inside, label, PHASE_NONE).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("window", "legacy_edge", "stab", "min_len"))
def _phases_batch_jit(si_BxT, lengths_B, *, window, legacy_edge, stab, min_len):
    return _phases_core(si_BxT, lengths_B, window=window, legacy_edge=legacy_edge, stab=stab, min_len=min_len)


def _is_traced(*arrays) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _phase_params(window, fps, legacy_edge, stability, min_smile_seconds, base_fps=float(BASE_FPS)):
    return dict(window=scale_window(window, fps, base_fps), legacy_edge=bool(legacy_edge), stab=int(stability),
                min_len=int(round(float(fps) * min_smile_seconds)))


def detect_phases(si, *, window: int = 27, fps: float = BASE_FPS, legacy_edge: bool = True, stability: int = 3,
                  min_smile_seconds: float = 1.0, length=None) -> jax.Array:
    """Smile phases of an SI series (spec section 5): int32 [T], 0 none, 1 onset, 2 apex, 3 offset.

    ``window`` is nominal at 50 fps and scaled per section 2; MIN_LEN = round(fps * min_smile_seconds); STAB is not
    scaled. Concrete input runs in float64 (inside ``jax.enable_x64(True)``; the global flag is untouched). Traced
    input (inside a caller's jit / vmap) runs in its own dtype. ``length``: real length of a padded series (frames
    beyond it get 0).
    """
    params = _phase_params(window, fps, legacy_edge, stability, min_smile_seconds)
    if _is_traced(si, length):
        si = jnp.asarray(si)
        if not jnp.issubdtype(si.dtype, jnp.floating):
            si = si.astype(jnp.result_type(float))
        if si.ndim != 1:
            raise ValueError(f"detect_phases expects a 1-D series, got shape {si.shape}")
        n = jnp.asarray(si.shape[0] if length is None else length, jnp.int32)
        return _phases_core(si[None], n.reshape(1), **params)[0]
    si = np.asarray(si, dtype=np.float64)
    if si.ndim != 1 or si.shape[0] < 1:
        raise ValueError(f"detect_phases expects a 1-D series of length >= 1, got shape {si.shape}")
    t_len = si.shape[0]
    n = t_len if length is None else int(length)
    # padded to a multiple of 64 frames (labels beyond n are 0): one compilation serves many lengths
    padded = np.zeros((1, _bucket(t_len, 64)))
    padded[0, :t_len] = si
    with jax.enable_x64(True):
        out = np.asarray(_phases_batch_jit(padded, np.array([n], np.int32), **params))[0, :t_len]
    return jnp.asarray(out)


def detect_phases_batch(si_BxT, lengths_B, *, window: int = 27, fps: float = BASE_FPS, legacy_edge: bool = True,
                        stability: int = 3, min_smile_seconds: float = 1.0) -> jax.Array:
    """:func:`detect_phases` of many padded SI series at once: int32 [B, T] (frames t >= lengths_B[b] get 0).

    Runs in float64 for concrete input (see :func:`detect_phases`); traced input runs in its own dtype.
    """
    params = _phase_params(window, fps, legacy_edge, stability, min_smile_seconds)
    if _is_traced(si_BxT, lengths_B):
        return _phases_batch_jit(jnp.asarray(si_BxT), jnp.asarray(lengths_B, jnp.int32), **params)
    si = np.asarray(si_BxT, dtype=np.float64)
    if si.ndim != 2 or si.shape[1] < 1:
        raise ValueError(f"detect_phases_batch expects [B, T] with T >= 1, got shape {si.shape}")
    lengths = np.asarray(lengths_B, dtype=np.int32).reshape(si.shape[0])
    si = np.where(np.arange(si.shape[1])[None, :] < lengths[:, None], si, 0.0)  # whatever the padding holds
    with jax.enable_x64(True):
        out = np.asarray(_phases_batch_jit(si, lengths, **params))
    return jnp.asarray(out)


# ----------------------------------------------------------------------------------------------------------------
# Features (spec sections 6-10)
# ----------------------------------------------------------------------------------------------------------------

class AudaFeatures(NamedTuple):
    """All AUDA features of one video (spec sections 7-10)."""
    frame_TxD: jax.Array        # [T, 154]
    au_wise_D: jax.Array        # [476]
    cross_au_D: jax.Array       # [4352]
    phases_T: jax.Array         # int32 [T]
    no_smile_detected: bool     # no valid smile: its segments' features are zeros


class AudaFeaturesBatch(NamedTuple):
    """AUDA features of a padded batch (host NumPy arrays, input order); frames t >= lengths_B[b] are zeros."""
    frame_BxTxD: np.ndarray         # [B, T, 154]
    au_wise_BxD: np.ndarray         # [B, 476]
    cross_au_BxD: np.ndarray        # [B, 4352]
    phases_BxT: np.ndarray          # int32 [B, T] (0 beyond each length)
    no_smile_detected_B: np.ndarray  # bool [B]
    lengths_B: np.ndarray           # int32 [B]


@functools.lru_cache(maxsize=None)
def _pairs(n_au: int) -> np.ndarray:
    """The spec's pair list (i, j), i < j, in order p = 0 .. n(n-1)/2 - 1 (section 9)."""
    return np.array([(i, j) for i in range(n_au) for j in range(i + 1, n_au)], dtype=np.int32)


@functools.lru_cache(maxsize=None)
def _circulant_pairs(n_au: int):
    """Pairs as circular shifts: rows (s, a) = (a, (a + s) mod n) for s = 1 .. n//2 cover every unordered pair once
    (for even n the shift n/2 is taken for a < n/2 only). A shift is a static slice + concatenate along the AU axis, far
    cheaper than a gather. Returns (shifts, order, flipped): ``order[p]`` is the circulant row of spec pair p and
    ``flipped[p]`` tells that the row holds (j, i), i.e. Delta_j - Delta_i."""
    rows = []
    shifts = []
    for sft in range(1, n_au // 2 + 1):
        count = n_au // 2 if (n_au % 2 == 0 and sft == n_au // 2) else n_au
        shifts.append((sft, count))
        rows += [(a, (a + sft) % n_au) for a in range(count)]
    where = {pair: k for k, pair in enumerate(rows)}
    order, flipped = [], []
    for i, j in _pairs(n_au):
        if (i, j) in where:
            order.append(where[(i, j)])
            flipped.append(False)
        else:
            order.append(where[(j, i)])
            flipped.append(True)
    return tuple(shifts), np.array(order, np.int32), np.array(flipped, bool)


def _series_core(au_BxTxA, si_BxT, lengths_B, *, fps: float, opts: AudaOptions, want_frame: bool):
    """Dynamics of a padded batch: (frame features [B, T, D] or None, series [B, T, C]).

    series = what the segment statistics need: the AU values [B, T, A], raw Delta and r-adjusted Delta
    [B, T, A x W (AU-major)]; zeros beyond each length. Everything is time-major (see :func:`_trend_time_major`), so
    the frame-wise features are a concatenation along the last axis, not a transpose.
    """
    x = au_BxTxA
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if opts.clip_au:
        x = jnp.clip(x, 0.0, 5.0)
    dtype = x.dtype
    b, t_len, n_au = x.shape
    lengths = jnp.clip(lengths_B.astype(jnp.int32), 1, t_len)
    real = jnp.arange(t_len) < lengths[:, None]                        # [B, T]
    x = jnp.where(real[:, :, None], x, 0.0)
    one = _runtime_one(lengths)
    # float64 (x64 enabled by the caller: the validation path) evaluates bitwise like the sequential reference, so
    # even exact ties between slopes (first arg-max on ties, section 9) fall the same way; float32 is the fast path.
    exact = dtype == jnp.float64
    dyn = []
    for w in scaled_windows(opts, fps):
        d, _, da = _trend_time_major(x, w, lengths, opts.legacy_edge, one, separate_products=exact)
        if want_frame:
            d2, _, d2a = _trend_time_major(d, w, lengths, opts.legacy_edge, one, separate_products=exact)
        else:
            d2 = d2a = None
        dyn.append((d, da, d2, d2a))
    # the segment statistics read the first 1 + 2 W blocks of the frame-wise layout: x, delta_w..., delta_adj_w...
    blocks = [x] + [dk[0] for dk in dyn] + [dk[1] for dk in dyn]
    if not want_frame:
        return None, jnp.concatenate(blocks, axis=2)                    # [B, T, A (1 + 2 W)]
    for q in (2, 3):  # delta2, delta2_adj; each for every window (section 7)
        blocks += [dk[q] for dk in dyn]
    # The SI (last column) broadcast to all columns, then every other block written in place into its columns
    # (dynamic-update-slices, each fused with the block's producer): XLA:CPU's concatenation along the minor axis
    # selects an operand per element and cost as much as all the regressions together (1.9 ns per element, 0.11 ms
    # per video); a zero buffer instead of the broadcast would be turned back into a (as slow) pad.
    n_d = sum(blk.shape[2] for blk in blocks) + 1
    frame = jnp.broadcast_to(jnp.where(real, si_BxT.astype(dtype), 0.0)[:, :, None], (b, t_len, n_d))
    col = 0
    for blk in blocks:
        frame = lax.dynamic_update_slice(frame, blk, (0, 0, col))
        col += blk.shape[2]                                             # [B, T, D]
    return frame, frame  # one output array: the series are its leading columns


def _segment_labels(opts: AudaOptions) -> tuple[int, ...]:
    return tuple(sorted({lab for seg in opts.segments for lab in SEGMENT_LABELS[seg]}))


def _slot_indices(xp, phases_BxT, lengths_B, labels: tuple[int, ...], n_slots: int):
    """Frames of each phase label, in time order, packed into ``n_slots`` slots: (frame_idx [B, L, S], counts [B, L]).

    Slots beyond a label's count repeat its first frame, so a plain max / min / first-argmax over the slots is the
    statistic over the label's frames (sums use the count). ``n_slots`` must be >= every count (the callers
    guarantee it). Written for ``xp`` = numpy or jax.numpy, so the host and the jit paths share it.
    """
    b, t_len = phases_BxT.shape
    tt = xp.arange(t_len)
    ph = xp.where(tt[None, :] < lengths_B[:, None], phases_BxT, -1)
    n_lab = len(labels)
    group = xp.full((b, t_len), n_lab)
    counts = []
    for q, lab in enumerate(labels):
        is_lab = ph == lab
        group = xp.where(is_lab, q, group)
        counts.append(xp.sum(is_lab, axis=1))
    counts = xp.stack(counts, axis=1)                                  # [B, L]
    order = xp.argsort(group * t_len + tt[None, :], axis=1)            # grouped by label, time order inside
    offsets = xp.cumsum(counts, axis=1) - counts
    j = xp.arange(n_slots)
    pos = offsets[:, :, None] + xp.minimum(j[None, None, :], xp.maximum(counts[:, :, None] - 1, 0))
    pos = xp.minimum(pos, t_len - 1).reshape(b, n_lab * n_slots)
    idx = xp.take_along_axis(order, pos, axis=1).reshape(b, n_lab, n_slots)
    return idx.astype(np.int32), counts.astype(np.int32)


def _row_indices(phases_BxT, lengths_B, labels: tuple[int, ...], row_size: int, row_bucket: int = 4):
    """Host (NumPy) packing of each video's label frames into rows of ``row_size`` slots:
    (frame_idx [B, R, row_size], row_count [B, R], row_label [B, R]).

    A label with n frames fills ceil(n / row_size) rows, in time order (row_label = its index in ``labels``); slots
    beyond a row's count repeat the row's first frame (so max / min / first-argmax over the slots are the row's), and
    unused rows have count 0 and label -1. R = the most rows any video needs, rounded up to a multiple of
    ``row_bucket``. Against one row of the longest label's size per label (:func:`_slot_indices`) this wastes at most
    ``row_size`` - 1 slots per label and video instead of padding every label to the longest one in the chunk.
    """
    phases_BxT = np.asarray(phases_BxT)
    b, t_len = phases_BxT.shape
    real = np.arange(t_len)[None, :] < np.asarray(lengths_B)[:, None]
    masks = [(phases_BxT == lab) & real for lab in labels]                         # [B, T] per label
    counts = np.stack([m.sum(axis=1) for m in masks], axis=1)                      # [B, L]
    rows_per = -(-counts // row_size)
    row_off = np.cumsum(rows_per, axis=1) - rows_per
    n_rows = _bucket(int(rows_per.sum(axis=1).max()), row_bucket)
    # The k-th frame of label q (time order) goes to slot k of the label's rows, i.e. flat slot row_off * row_size + k
    # of the video: np.nonzero lists the frames in (video, time) order, so k is the position among the video's ones.
    idx = np.full((b, n_rows * row_size), -1, np.int32)
    row_label = np.full((b, n_rows), -1, np.int32)
    r = np.arange(n_rows)
    for q, m in enumerate(masks):
        bi, ti = np.nonzero(m)
        rank = np.arange(len(bi)) - (np.cumsum(counts[:, q]) - counts[:, q])[bi]
        idx[bi, row_off[bi, q] * row_size + rank] = ti
        row_label[(r >= row_off[:, q:q + 1]) & (r < (row_off + rows_per)[:, q:q + 1])] = q
    idx = idx.reshape(b, n_rows, row_size)
    row_count = (idx >= 0).sum(axis=2).astype(np.int32)
    idx = np.where(idx < 0, np.maximum(idx[:, :, :1], 0), idx)                    # repeats of the row's first frame
    return idx, row_count, row_label


def _reduce_major(a, op, fill, one=None, k: int = 8) -> jax.Array:
    """op-reduction over the major axis 0, as a k-ary tree of element-wise ops on contiguous slices: every level is
    one vectorised loop over whole rows. (XLA:CPU's own reduce over a major axis walks each output element's column
    with a stride, ~10 ns per element here; over the minor axis it runs sequentially at 1-3 ns per element.)

    ``one`` (see :func:`_keep`): every level is materialised; otherwise XLA fuses the cheap-looking levels into their
    consumers and re-evaluates the whole tree for every element that reads the result."""
    def arity(rows):
        for kk in (k, 4, 2):
            if rows % kk == 0:
                return kk
        return None

    while a.shape[0] > 1:
        rows = a.shape[0]
        kk = arity(rows)
        if kk is None:
            kk = min(k, rows)
            pad = -rows % kk
            a = jnp.concatenate([a, jnp.full((pad,) + a.shape[1:], fill, a.dtype)], axis=0)
        m = a.shape[0] // kk
        acc = a[:m]
        for i in range(1, kk):
            acc = op(acc, a[i * m:(i + 1) * m])
        a = _keep(acc, one)
    return a[0]


def _gather_rows(series_BxTxD, idx_SxBxR, n_ch: int):
    """The first ``n_ch`` frame-wise columns at the slot frames, slot-major: [S, B, R, n_ch] (a gather of whole rows
    of the time-major series; ``idx_SxBxR`` holds frame indices)."""
    b, t_len, d = series_BxTxD.shape
    flat = idx_SxBxR + (jnp.arange(b, dtype=idx_SxBxR.dtype) * t_len)[None, :, None]
    return jnp.take(series_BxTxD.reshape(b * t_len, d), flat, axis=0)[..., :n_ch]


def _segments_core(g_SxBxRxC, idx_SxBxR, counts_BxR, row_label_BxR, *, fps: float, opts: AudaOptions, n_au: int,
                   want: tuple):
    """AU-wise (section 8) and cross-AU (section 9) vectors [B, S x 119], [B, S x 1088] from slot-packed series.

    ``g_SxBxRxC``: the series at the slot frames, slot-major (:func:`_gather_rows`), channels in the frame-wise
    column order x (A), delta (W blocks of A), delta_adj (W blocks of A); ``idx_SxBxR`` the slot frames. Each row r of
    a video holds frames of one phase label ``row_label_BxR`` (its index in :func:`_segment_labels`; -1: unused row),
    in time order, ``counts_BxR`` of them; slots beyond the count repeat the row's first frame (so max / min /
    first-argmax over the slots are the row's). Statistics are first taken per row over its slots (k-ary trees over
    the major slot axis: element-wise vector operations), then per phase label over its rows, then combined into the
    configured segments (unions of labels): max / min of maxima / minima, sums of sums, and for the arg-extremes the
    earliest frame among the rows / labels that reach the extreme. Empty segments give zeros.
    """
    g = g_SxBxRxC
    dtype = g.dtype
    n_slots, b, n_rows, _ = g.shape
    nw = len(opts.windows)
    labels = _segment_labels(opts)
    n_lab = len(labels)
    seg_labels = [[labels.index(lab) for lab in SEGMENT_LABELS[seg]] for seg in opts.segments]
    n_seg = len(seg_labels)
    big = jnp.iinfo(jnp.int32).max
    one = _runtime_one(counts_BxR)
    row_of = [(row_label_BxR == q) & (counts_BxR > 0) for q in range(n_lab)]       # [B, R] each
    counts_BxL = jnp.stack([jnp.sum(jnp.where(m, counts_BxR, 0), axis=1) for m in row_of], axis=1)
    present = counts_BxL > 0                                            # [B, L]
    seg_count = jnp.stack([sum(counts_BxL[:, k] for k in ks) for ks in seg_labels], axis=1)   # [B, S]
    nonempty = seg_count > 0
    inv_count = 1.0 / jnp.maximum(seg_count, 1).astype(dtype)
    gx = g[..., :n_au]                                                  # [slots, B, R, A]
    gd = g[..., n_au:n_au * (1 + nw)]                                   # [slots, B, R, W A] (window-major)
    ga = g[..., n_au * (1 + nw):n_au * (1 + 2 * nw)]
    # 1 for the first ``count`` slots of each row (each frame once in the sums), 0 for the repeats
    first_uses = (jnp.arange(n_slots)[:, None, None] < counts_BxR[None])[..., None]    # [slots, B, R, 1]

    def to_labels(stat, reduce, empty, row_axis=1):  # per-row statistic (rows on row_axis) -> per label [B, L, ...]
        shape = [b] + [1] * (stat.ndim - 1)
        shape[row_axis] = n_rows
        return jnp.stack([reduce(jnp.where(m.reshape(shape), stat, empty), axis=row_axis) for m in row_of], axis=1)

    def per_segment(stat_BxLx, op, empty):  # [B, L, ...] -> [B, S, ...] (absent labels replaced by ``empty``)
        stat_BxLx = jnp.where(present.reshape((b, n_lab) + (1,) * (stat_BxLx.ndim - 2)), stat_BxLx, empty)
        return jnp.stack([functools.reduce(op, [stat_BxLx[:, k] for k in ks]) for ks in seg_labels], axis=1)

    def interlace(a):  # [..., W A] (window-major) -> [..., A W] flattened (AU-major, window-interlaced)
        return jnp.swapaxes(a.reshape(a.shape[:-1] + (nw, n_au)), -1, -2).reshape(a.shape)

    out = {}
    if "au_wise" in want:
        x_max = per_segment(to_labels(_reduce_major(gx, jnp.maximum, -jnp.inf, one), jnp.max, -jnp.inf),
                            jnp.maximum, -jnp.inf)                      # [B, S, A]
        x_min = per_segment(to_labels(_reduce_major(gx, jnp.minimum, jnp.inf, one), jnp.min, jnp.inf),
                            jnp.minimum, jnp.inf)
        x_sum = per_segment(to_labels(_reduce_major(jnp.where(first_uses, gx, 0.0), jnp.add, 0.0, one), jnp.sum, 0.0),
                            jnp.add, 0.0)
        d_max = per_segment(to_labels(_reduce_major(gd, jnp.maximum, -jnp.inf, one), jnp.max, -jnp.inf),
                            jnp.maximum, -jnp.inf)                      # [B, S, W A]
        d_sum = per_segment(to_labels(_reduce_major(jnp.where(first_uses, gd, 0.0), jnp.add, 0.0, one), jnp.sum, 0.0),
                            jnp.add, 0.0)
        x_min = jnp.where(nonempty[..., None], x_min, 0.0)
        seg = jnp.concatenate([x_max - x_min, x_sum * inv_count[..., None], x_max,
                               interlace(d_sum * inv_count[..., None]), interlace(d_max)], axis=-1)  # [B, S, 119]
        out["au_wise"] = jnp.where(nonempty[..., None], seg, 0.0).astype(dtype).reshape(b, -1)
    if "cross_au" in want:
        shifts, order, flipped = _circulant_pairs(n_au)
        # min and max of the pair differences over each row's slots, then over each label's rows. Delta is
        # transposed to [slots, R, W, (A + 8) B] (the videos on the minor axis, the first 8 AUs repeated after the
        # last), so the circulant pair block of shift s, Delta_a - Delta_{(a + s) mod A}, is two plain slices, the
        # min / max over the slots an unrolled chain of element-wise operations over whole [R, W, A B] blocks (one
        # vectorised loop per shift, the differences never materialised), and the min / max over a label's rows a
        # masked tree over the major row axis. (Flattened to A B: XLA's layout assignment would otherwise keep A
        # physically minor and read it with strides.) Against the variadic reduce over a minor slot axis that this
        # replaces: 0.29 -> 0.15 ms per video for the cross-AU statistics (16 videos, 16 rows).
        n_wrap = max(sft for sft, _ in shifts)                          # AUs repeated at the end: circular shifts
        dw = jnp.transpose(gd.reshape(n_slots, b, n_rows, nw, n_au), (0, 2, 3, 4, 1))
        dw = _keep(jnp.concatenate([dw, dw[:, :, :, :n_wrap]], axis=3), one)
        dw = dw.reshape(n_slots, n_rows, nw, (n_au + n_wrap) * b)       # [slots, R, W, (A + wrap) B]
        row_mask = [m.T[:, None, None, :] for m in row_of]              # [R, 1, 1, B] per label
        inf = np.array(np.inf, dtype)
        l_min, l_max = [], []                                           # [L, W, n, B] per shift
        for sft, count in shifts:
            lo_v = hi_v = None
            for q in range(n_slots):
                part = dw[q, :, :, :count * b] - dw[q, :, :, sft * b:(sft + count) * b]   # [R, W, n B]
                if opts.cross_au_abs:
                    part = jnp.abs(part)
                lo_v = part if lo_v is None else jnp.minimum(lo_v, part)
                hi_v = part if hi_v is None else jnp.maximum(hi_v, part)
            lo_v = _keep(lo_v, one).reshape(n_rows, nw, count, b)
            hi_v = _keep(hi_v, one).reshape(n_rows, nw, count, b)
            l_min.append(jnp.stack([_reduce_major(jnp.where(m, lo_v, inf), jnp.minimum, inf) for m in row_mask]))
            l_max.append(jnp.stack([_reduce_major(jnp.where(m, hi_v, -inf), jnp.maximum, -inf) for m in row_mask]))
        # [L, W, P, B] (circulant rows) -> [B, L, P, W] -> segments, spec pair order
        c_min = per_segment(jnp.transpose(jnp.concatenate(l_min, axis=2), (3, 0, 2, 1)), jnp.minimum,
                            jnp.inf)[:, :, order]
        c_max = per_segment(jnp.transpose(jnp.concatenate(l_max, axis=2), (3, 0, 2, 1)), jnp.maximum,
                            -jnp.inf)[:, :, order]
        if not opts.cross_au_abs:  # a flipped row holds Delta_j - Delta_i: min and max swap and change sign
            fl = flipped[None, None, :, None]
            c_min, c_max = jnp.where(fl, -c_max, c_min), jnp.where(fl, -c_min, c_max)

        # the maximum and the minimum of delta_adj per row (trees over the slots), then the earliest slot reaching
        # each (a chain of selects from the last slot down; slots are in time order and repeats hold the row's first
        # frame, so the earliest slot has the earliest frame), then its frame (a small gather)
        idx_BxRxS = jnp.transpose(idx_SxBxR, (1, 2, 0))

        def first_frame(best):
            pos = jnp.zeros_like(best)
            for q in reversed(range(n_slots)):
                pos = jnp.where(ga[q] == best, float(q), pos)
            return jnp.take_along_axis(idx_BxRxS, _keep(pos, one).astype(jnp.int32), axis=2)   # [B, R, W A]

        best_2 = [_reduce_major(ga, op, fill, one) for op, fill in ((jnp.maximum, -jnp.inf), (jnp.minimum, jnp.inf))]
        frame_2 = [first_frame(best) for best in best_2]

        def arg_extreme(best_r, frame_r):  # first frame of each segment's maximum, from the rows' [B, R, W A]
            best_l = to_labels(best_r, jnp.max, -jnp.inf)              # [B, L, W A]
            frame_l = jnp.stack([jnp.min(jnp.where(m[..., None] & (best_r == best_l[:, q:q + 1]), frame_r, big),
                                         axis=1) for q, m in enumerate(row_of)], axis=1)
            best = per_segment(best_l, jnp.maximum, -jnp.inf)          # [B, S, W A]
            frames = []
            for s_i, ks in enumerate(seg_labels):
                f = jnp.full((b, nw * n_au), big, jnp.int32)
                for k in ks:
                    hit = present[:, k, None] & (best_l[:, k] == best[:, s_i])
                    f = jnp.minimum(f, jnp.where(hit, frame_l[:, k], big))
                frames.append(f)
            frames = jnp.stack(frames, axis=1)                          # [B, S, W A]
            return jnp.swapaxes(frames.reshape(b, n_seg, nw, n_au), 2, 3)   # [B, S, A, W]

        i_max = arg_extreme(best_2[0], frame_2[0])
        i_min = arg_extreme(-best_2[1], frame_2[1])  # the max of -delta_adj
        pi, pj = _pairs(n_au)[:, 0], _pairs(n_au)[:, 1]
        scale = (1.0 / float(fps)) if opts.time_unit == "seconds" else 1.0
        t_up = (i_max[:, :, pi] - i_max[:, :, pj]).astype(dtype) * scale   # [B, S, P, W]
        t_down = (i_min[:, :, pi] - i_min[:, :, pj]).astype(dtype) * scale
        seg = jnp.concatenate([c_min.reshape(b, n_seg, -1), c_max.reshape(b, n_seg, -1),
                               t_up.reshape(b, n_seg, -1), t_down.reshape(b, n_seg, -1)], axis=-1)  # [B, S, 1088]
        out["cross_au"] = jnp.where(nonempty[..., None], seg, 0.0).astype(dtype).reshape(b, -1)
    return out


def _features_core(au_BxTxA, si_BxT, phases_BxT, lengths_B, *, fps: float, opts: AudaOptions, want: tuple,
                   n_slots: int | None = None):
    """All requested features of a padded batch inside one traceable function (``compute_features``): one row of
    ``n_slots`` (default T) slots per phase label (:func:`_slot_indices`)."""
    b, t_len, n_au = au_BxTxA.shape
    frame, series = _series_core(au_BxTxA, si_BxT, lengths_B, fps=fps, opts=opts, want_frame="frame" in want)
    out = {"frame": frame} if "frame" in want else {}
    seg_want = tuple(w for w in want if w != "frame")
    if seg_want:
        lengths = jnp.clip(jnp.asarray(lengths_B).astype(jnp.int32), 1, t_len)
        labels = _segment_labels(opts)
        idx, counts = _slot_indices(jnp, jnp.asarray(phases_BxT).astype(jnp.int32), lengths, labels,
                                    n_slots or t_len)
        idx = jnp.transpose(idx, (2, 0, 1))                             # [S, B, L]
        row_label = jnp.broadcast_to(jnp.arange(len(labels), dtype=jnp.int32), counts.shape)
        n_ch = n_au * (1 + 2 * len(opts.windows))
        out.update(_segments_core(_gather_rows(series, idx, n_ch), idx, counts, row_label, fps=fps, opts=opts,
                                  n_au=n_au, want=seg_want))
    return out


@functools.partial(jax.jit, static_argnames=("fps", "opts", "want_frame"))
def _series_jit(au_BxTxA, si_BxT, lengths_B, *, fps, opts, want_frame):
    frame, series = _series_core(au_BxTxA, si_BxT, lengths_B, fps=fps, opts=opts, want_frame=want_frame)
    return frame if want_frame else series  # with the frame-wise features, the series are its leading columns


_gather_rows_jit = jax.jit(_gather_rows, static_argnames=("n_ch",))


@functools.partial(jax.jit, static_argnames=("fps", "opts", "n_au", "want"))
def _segments_jit(g_SxBxRxC, idx_SxBxR, counts_BxR, row_label_BxR, *, fps, opts, n_au, want):
    return _segments_core(g_SxBxRxC, idx_SxBxR, counts_BxR, row_label_BxR, fps=fps, opts=opts, n_au=n_au,
                          want=want)


_ROW_SIZE = 32  # slots per row of label frames (_row_indices)


def _features_host(au_BxTxA, si_BxT, phases_BxT, lengths_B, *, fps: float, opts: AudaOptions, want: tuple,
                   row_size: int = _ROW_SIZE, rows=None):
    """The batched path used by extract / extract_batch: the same arithmetic as :func:`compute_features`, in three
    compiled pieces (dynamics: shape [B, T]; slot gather; segment statistics: shape [row_size, B, R]), with the
    label frames packed into rows of ``row_size`` slots from the known phases (:func:`_row_indices`), so that the
    segment statistics run over the smile frames only, with little padding. ``rows``: that packing, if the caller
    already has it (extract_batch packs all videos at once)."""
    lengths = np.asarray(lengths_B, np.int32)
    series = _series_jit(au_BxTxA, si_BxT, lengths, fps=fps, opts=opts, want_frame="frame" in want)
    out = {"frame": series} if "frame" in want else {}
    seg_want = tuple(w for w in want if w != "frame")
    if seg_want:
        phases = np.asarray(phases_BxT, np.int32)
        labels = _segment_labels(opts)
        idx, counts, row_label = rows if rows is not None else _row_indices(phases, lengths, labels, row_size)
        idx = np.ascontiguousarray(idx.transpose(2, 0, 1))              # slot-major [S, B, R]
        n_au = au_BxTxA.shape[2]
        g = _gather_rows_jit(series, idx, n_ch=n_au * (1 + 2 * len(opts.windows)))
        out.update(_segments_jit(g, idx, counts, row_label, fps=fps, opts=opts, n_au=n_au, want=seg_want))
    return out


_ALL = ("frame", "au_wise", "cross_au")


def compute_features(au_BxTxA, si_BxT, phases_BxT, lengths_B, *, fps: float = BASE_FPS, options=None,
                     outputs: Sequence[str] = _ALL) -> dict[str, jax.Array]:
    """Pure, jittable feature computation for a padded batch with given phases (spec sections 6-10).

    Returns a dict with the requested ``outputs``: "frame" [B, T, 154] (zeros beyond each length), "au_wise" [B, 476],
    "cross_au" [B, 4352]. ``fps``, ``options`` and ``outputs`` are static. No input validation (see
    :func:`extract_batch`, which also restricts the segment statistics to the smile frames).
    """
    opts = AudaOptions.from_config(options)
    unknown = set(outputs) - set(_ALL)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)} (known: {_ALL})")
    want = tuple(o for o in _ALL if o in outputs)
    return _features_core(jnp.asarray(au_BxTxA), jnp.asarray(si_BxT), jnp.asarray(phases_BxT),
                          jnp.asarray(lengths_B), fps=float(fps), opts=opts, want=want)


def _needed_frames(fps: float, opts: AudaOptions) -> int:
    return max(scaled_windows(opts, fps) + (scale_window(opts.phase_window, fps, opts.base_fps),))


def _check_length(n: int, label: str, fps: float, opts: AudaOptions):
    need = _needed_frames(fps, opts)
    if n < need:
        raise InputError(f"{label}: {n} frames is shorter than the largest AUDA window ({need} frames at {fps:g} fps)")


def _check_finite(au, si, label):
    if not (np.all(np.isfinite(au)) and np.all(np.isfinite(si))):
        raise InputError(f"{label}: AU or SI series contains NaN or inf")


def _bucket(n: int, bucket: int) -> int:
    return max(bucket, -(-n // bucket) * bucket) if bucket else n


_REGROUP = 4  # extract_batch: chunks re-sorted by row count within runs of this many (sorted by length)
_PHASE_CHUNK = 128  # videos per phase-detection call (1240 videos, one core: 128 / 256 / 64 = 0.085 / 0.089 / 0.090 ms)
_SCAN_UNROLL = 1  # lax.scan unroll of the phase detector (4: no clear gain on 2 busy cores)


def _phases_for(si_BxT, lengths_B, fps, opts, chunk=_PHASE_CHUNK, workers: int = 1):
    """Float64 phases of a padded batch, in chunks of ``chunk`` videos (the last one padded with copies)."""
    si_BxT = np.asarray(si_BxT, np.float64)
    lengths_B = np.asarray(lengths_B, np.int32)
    n = si_BxT.shape[0]

    def run(si_c, len_c):
        return np.asarray(detect_phases_batch(si_c, len_c, window=opts.phase_window, fps=fps,
                                              legacy_edge=opts.legacy_edge, stability=opts.phase_stability,
                                              min_smile_seconds=opts.min_smile_seconds))

    if n <= chunk:
        return run(si_BxT, lengths_B)
    if workers > 1:  # as many chunks per worker (e.g. 1240 videos, 2 workers, chunk 256: 6 x 208 instead of 5 x 256)
        n_chunks = _bucket(-(-n // chunk), workers)
        chunk = _bucket(-(-n // n_chunks), 8)
    parts = []
    for c0 in range(0, n, chunk):
        idx = np.minimum(np.arange(c0, c0 + chunk), n - 1)  # static chunk shape
        parts.append((si_BxT[idx], lengths_B[idx], min(chunk, n - c0)))
    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            outs = list(pool.map(lambda p: run(p[0], p[1]), parts))
    else:
        outs = [run(p[0], p[1]) for p in parts]
    return np.concatenate([o[:k] for o, (_, _, k) in zip(outs, parts)])


def _single(au_TxA, si_T, fps, options, overrides, name, phases_T, want, bucket=64):
    """One video through the batched path (T padded to a multiple of ``bucket``: one compilation per bucket)."""
    opts = _resolve_options(options, overrides)
    label = name if name is not None else "<video>"
    au = np.asarray(au_TxA)
    si = np.asarray(si_T, dtype=np.float64)
    if au.ndim != 2:
        raise InputError(f"{label}: AU array must be [T, A], got shape {au.shape}")
    if si.ndim != 1 or si.shape[0] != au.shape[0]:
        raise InputError(f"{label}: SI series has shape {si.shape}, AU series has {au.shape[0]} frames")
    t_len = au.shape[0]
    _check_length(t_len, label, fps, opts)
    _check_finite(au, si, label)
    if not np.issubdtype(au.dtype, np.floating):
        au = au.astype(np.float32)
    dtype = jax.dtypes.canonicalize_dtype(au.dtype)  # float32 unless x64 is enabled
    t_pad = _bucket(t_len, bucket)
    au_p = np.zeros((1, t_pad, au.shape[1]), dtype)
    au_p[0, :t_len] = au
    si_p = np.zeros((1, t_pad), np.float64)
    si_p[0, :t_len] = si
    lengths = np.array([t_len], np.int32)
    if phases_T is None:
        phases = _phases_for(si_p, lengths, fps, opts)
    else:
        phases = np.zeros((1, t_pad), np.int32)
        phases[0, :t_len] = np.asarray(phases_T, np.int32).reshape(t_len)
    out = _features_host(au_p, si_p.astype(dtype), phases, lengths, fps=float(fps), opts=opts, want=want)
    if "frame" in out:
        out["frame"] = out["frame"][:, :t_len]
    return out, phases[0, :t_len]


def frame_features(au_TxA, si_T, *, fps: float = BASE_FPS, options=None, name: str | None = None,
                   **overrides) -> jax.Array:
    """Frame-wise features [T, 154] (spec section 7): AU values, Delta_9, Delta_27, adj_9, adj_27, Delta2_9,
    Delta2_27, adj2_9, adj2_27 (17 each, AU order of section 1), SI."""
    out, _ = _single(au_TxA, si_T, fps, options, overrides, name, None, ("frame",))
    return out["frame"][0]


def au_wise_features(au_TxA, si_T, *, fps: float = BASE_FPS, phases_T=None, options=None, name: str | None = None,
                     **overrides) -> jax.Array:
    """AU-wise vector [476] = segments x 119 (spec sections 8, 10); phases from the SI unless ``phases_T`` given."""
    out, _ = _single(au_TxA, si_T, fps, options, overrides, name, phases_T, ("au_wise",))
    return out["au_wise"][0]


def cross_au_features(au_TxA, si_T, *, fps: float = BASE_FPS, phases_T=None, options=None, name: str | None = None,
                      **overrides) -> jax.Array:
    """Cross-AU vector [4352] = segments x 1088 (spec sections 9, 10); phases from the SI unless given."""
    out, _ = _single(au_TxA, si_T, fps, options, overrides, name, phases_T, ("cross_au",))
    return out["cross_au"][0]


def extract(au_TxA, si_T, *, fps: float = BASE_FPS, options=None, name: str | None = None,
            **overrides) -> AudaFeatures:
    """All AUDA features of one video (spec sections 5-10).

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
    out, phases = _single(au_TxA, si_T, fps, options, overrides, name, None, _ALL)
    return AudaFeatures(out["frame"][0], out["au_wise"][0], out["cross_au"][0], jnp.asarray(phases),
                        not bool(np.any(phases > 0)))


def extract_batch(au_BxTxA, si_BxT, lengths_B, *, fps: float = BASE_FPS, options=None,
                  names: Sequence[str] | None = None, bucket: int = 64, chunk_size: int | None = 16,
                  workers: int = 1, **overrides) -> AudaFeaturesBatch:
    """All AUDA features of many padded videos (zero-padded at the end; real lengths ``lengths_B``).

    Features of video b equal those of its unpadded prefix [:lengths_B[b]] (edge rule applied at the real length,
    padded frames excluded from every segment). Videos are processed in order of length, in chunks of
    ``chunk_size`` whose time axis is padded to a multiple of ``bucket`` frames, so each chunk does little padded
    work and one compiled function serves every chunk with the same bucket (``chunk_size=None``: one call for the
    whole batch; 16, the default, measured fastest on the 2-CPU development machine, benchmarks/README.md). Phase
    detection runs first, in float64, for all videos. ``workers`` > 1 computes that many chunks at once in threads
    (1240 videos, 2 CPU cores, XLA's intra-op threading on: chunks of 16, 0.55-0.57 ms per video with 2 workers
    against 0.60 with one; chunks of 128, the configs' choice, 0.52-0.55 against 0.68-0.75; benchmarks/README.md).

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
        raise ValueError(f"extract_batch expects au [B, T, A], si [B, T], lengths [B]; got {au.shape}, {si.shape}, "
                         f"{lengths.shape}")
    if names is not None and len(names) != au.shape[0]:
        raise ValueError(f"extract_batch: {len(names)} names for {au.shape[0]} videos")
    n_vid, t_len, n_au = au.shape
    # validation, vectorised; the first offending video is named
    real_t = np.arange(t_len)[None, :] < lengths[:, None]
    finite = (np.all(np.isfinite(au) | ~real_t[:, :, None], axis=(1, 2))
              & np.all(np.isfinite(si) | ~real_t, axis=1))
    for b in np.flatnonzero((lengths > t_len) | (lengths < _needed_frames(fps, opts)) | ~finite)[:1]:
        label = names[b] if names is not None else f"video {b}"
        n = int(lengths[b])
        if n > t_len:
            raise InputError(f"{label}: length {n} exceeds the padded length {t_len}")
        _check_length(n, label, fps, opts)
        _check_finite(au[b, :n], si[b, :n], label)
    if not np.issubdtype(au.dtype, np.floating):
        au = au.astype(np.float32)
    dtype = jax.dtypes.canonicalize_dtype(au.dtype)  # float32 unless x64 is enabled
    chunk = n_vid if not chunk_size else min(int(chunk_size), n_vid)
    t_all = _bucket(int(lengths.max()), bucket)

    # phases for every video (float64), at the common bucketed length
    si_p = np.zeros((n_vid, t_all), np.float64)
    real = np.arange(min(t_len, t_all))[None, :] < lengths[:, None]
    si_p[:, :t_len] = np.where(real, si[:, :t_all], 0.0)
    phases = _phases_for(si_p, lengths.astype(np.int32), fps, opts, workers=workers)

    # every video's label frames packed into rows at once (one NumPy pass instead of one per chunk); rows are used
    # from row 0, so a chunk takes the first (most rows any of its videos uses, rounded up to a multiple of 4)
    row_idx, row_count, row_label = _row_indices(phases, lengths, _segment_labels(opts), _ROW_SIZE)
    rows_used = np.sum(row_label >= 0, axis=1)
    # Chunks of similar length (the dynamics' time axis) and, within every run of _REGROUP chunks, of similar row
    # counts (the segment statistics' row axis): 1240 benchmark videos, chunk 16: 14.1 -> 12.3 rows and 391 -> 396
    # frames per video, against chunks by length alone.
    order = np.argsort(lengths, kind="stable")
    group = _REGROUP * chunk
    order = np.concatenate([order[g:g + group][np.argsort(rows_used[order[g:g + group]], kind="stable")]
                            for g in range(0, n_vid, group)])

    n_d = feature_dims(opts, n_au)
    frame = np.zeros((n_vid, t_len, n_d["frame"]), dtype)
    au_wise = np.zeros((n_vid, n_d["au_wise"]), dtype)
    cross = np.zeros((n_vid, n_d["cross_au"]), dtype)
    def run_chunk(c0):
        idx = order[c0:c0 + chunk]
        t_c = min(_bucket(int(lengths[idx].max()), bucket), t_all)
        full = np.concatenate([idx, np.repeat(idx[-1:], chunk - len(idx))])  # static chunk shape
        au_c = np.zeros((chunk, t_c, n_au), dtype)
        span = min(t_c, t_len)
        au_c[:, :span] = au[full, :span]
        n_rows = _bucket(int(rows_used[full].max()), 4)
        rows = (row_idx[full, :n_rows], row_count[full, :n_rows], row_label[full, :n_rows])
        out = _features_host(au_c, si_p[full, :t_c].astype(dtype), phases[full, :t_c], lengths[full],
                             fps=float(fps), opts=opts, want=_ALL, rows=rows)
        k = len(idx)
        frame[idx, :span] = np.asarray(out["frame"])[:k, :span]
        au_wise[idx] = np.asarray(out["au_wise"])[:k]
        cross[idx] = np.asarray(out["cross_au"])[:k]

    starts = range(0, n_vid, chunk)
    if workers > 1 and len(starts) > 1:
        # chunks write disjoint rows; XLA releases the GIL while it computes
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(run_chunk, c0) for c0 in starts]:
                f.result()
    else:
        for c0 in starts:
            run_chunk(c0)
    phases_out = np.zeros((n_vid, t_len), np.int32)
    phases_out[:, :min(t_len, t_all)] = phases[:, :t_len]
    return AudaFeaturesBatch(frame, au_wise, cross, phases_out, ~np.any(phases_out > 0, axis=1),
                             lengths.astype(np.int32))
