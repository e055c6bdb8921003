"""The AUDA smile-phase detector (spec auda.md section 5): onset, apex and offset frames from the SI series.

The original's nested loops restated as one forward ``lax.scan`` over the frames, vectorised over a batch of padded
series, plus vectorised look-ups. It compares slopes exactly (ties are broken by position), so its regressions
evaluate bitwise like a sequential program (``separate_products``) and the concrete-array entry points run in float64
inside the thread-local ``jax.enable_x64(True)`` (the global flag is never changed); traced input runs in its own dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from smilejax.auda.layout import scale_window
from smilejax.auda.perf import bucketed, cum_extreme, materialize, runtime_one, shift
from smilejax.auda.regression import trend_padded
from smilejax.constants import BASE_FPS, PHASE_APEX, PHASE_NONE, PHASE_OFFSET, PHASE_ONSET


def _phases_core(
  v_BxT: jax.Array, lengths_B: jax.Array, *, window: int, legacy_edge: bool, stab: int, min_len: int
) -> jax.Array:
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
  one = runtime_one(lengths)
  # raw slopes only: no S_vv / r (the constant-window rule still applies: delta := 0)
  d, _, _ = trend_padded(v_BxT, window, lengths, legacy_edge, one, separate_products=True, need_r=False)
  dd, _, _ = trend_padded(d, window, lengths, legacy_edge, one, separate_products=True, need_r=False)
  f = v_BxT.dtype
  tt = jnp.arange(t_len, dtype=jnp.int32)
  real = tt < lengths[:, None]
  big = t_len + stab + 2  # "no such frame"
  pos = (d > 0) & real
  pos3 = pos
  for i in range(1, stab):
    pos3 = pos3 & shift(pos, i, False)

  # Extremes of the STAB frames p = k-STAB+1 .. k (all d > 0) folded into the candidate opened at p.
  fold_best = shift(d, -(stab - 1), 0.0)
  fold_rise = jnp.broadcast_to((tt - (stab - 1)).astype(f), (b, t_len))
  fold_peak = shift(v_BxT, -(stab - 1), 0.0)
  fold_vs = fold_peak
  for i in range(1, stab):
    di = shift(d, -(stab - 1 - i), 0.0)
    better = di > fold_best
    fold_best = jnp.where(better, di, fold_best)
    fold_rise = jnp.where(better, (tt - (stab - 1) + i).astype(f), fold_rise)
    fold_peak = jnp.maximum(fold_peak, shift(v_BxT, -(stab - 1 - i), 0.0))

  # The first candidate opens at the first pos3 frame s0 (known before the scan); scanning s0 itself changes
  # nothing but best_up / rise (d[s0] > 0: peak stays v[s0], no fall, not falling).
  s0 = jnp.min(jnp.where(pos3, tt, big), axis=1)
  has0 = s0 < lengths
  v_s0 = jnp.take_along_axis(v_BxT, jnp.clip(s0, 0, t_len - 1)[:, None], axis=1)[:, 0]
  d_s0 = jnp.take_along_axis(d, jnp.clip(s0, 0, t_len - 1)[:, None], axis=1)[:, 0]
  zero = jnp.zeros((b,), f)
  # carry: s, vs = v[s], best_up, rise, best_down, fall, peak, fr = run while falling (-1 before): one number
  # for both, so that "close" is a single comparison.
  init = (
    jnp.where(has0, s0, big).astype(f),
    v_s0,
    jnp.where(has0, d_s0, 0.0),
    s0.astype(f),
    zero,
    zero - 1,
    v_s0,
    zero - 1,
  )
  # One [T, B, 8] array of per-frame inputs: a physical transpose, so that each step reads contiguous memory (XLA
  # would otherwise keep the [B, T] layout and read a strided column per step).
  xs = jnp.stack(
    [jnp.broadcast_to(tt.astype(f), (b, t_len)), d, v_BxT, real.astype(f), fold_best, fold_rise, fold_peak, fold_vs],
    axis=0,
  )
  xs = materialize(jnp.transpose(xs, (2, 0, 1)), one)  # [T, 8, B]
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
    fr_n = materialize(jnp.where(proc & falling, jnp.where(dk > 0, jnp.maximum(fr, 0.0) + 1.0, 0.0), fr), one_f)
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

  last, (closed, c_s, c_rise, c_fall) = lax.scan(step, init, xs)
  # candidate closed at step k -> indexed at its last frame end - 1 = k - STAB - 1
  closed, c_s, c_rise, c_fall = (
    shift(jnp.swapaxes(a, 0, 1), stab + 1, fill)
    for a, fill in ((closed, False), (c_s, -1.0), (c_rise, -1.0), (c_fall, -1.0))
  )
  c_s, c_rise, c_fall = (a.astype(jnp.int32) for a in (c_s, c_rise, c_fall))
  c_end = tt + 1
  f_s, f_rise, f_fall = (last[i].astype(jnp.int32) for i in (0, 3, 5))
  final_open = f_s < lengths

  # (d)/(e) tables
  up_knee = (dd < shift(dd, 1, 0.0)) & (tt + 1 < lengths[:, None])
  next_up = cum_extreme(jnp.where(up_knee, tt, big), jnp.minimum, big, reverse=True, one=one)
  down_knee = (shift(dd, 1, 0.0) < dd) & (tt + 1 < lengths[:, None])
  prev_down = cum_extreme(jnp.where(down_knee, tt, -1), jnp.maximum, -1, one=one)

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
  owner = cum_extreme(jnp.where(closed, tt, big), jnp.minimum, big, reverse=True, one=one)
  has = owner < big
  idx = jnp.clip(owner, 0, t_len - 1)

  def take(a):
    return jnp.take_along_axis(a, idx, axis=1)

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
  return dict(
    window=scale_window(window, fps, base_fps),
    legacy_edge=bool(legacy_edge),
    stab=int(stability),
    min_len=int(round(float(fps) * min_smile_seconds)),
  )


def detect_phases(
  si,
  *,
  window: int = 27,
  fps: float = BASE_FPS,
  legacy_edge: bool = True,
  stability: int = 3,
  min_smile_seconds: float = 1.0,
  length=None,
) -> jax.Array:
  """Smile phases of an SI series (auda.md section 5, the original AUDA detector): int32 [T], 0 none, 1 onset,
  2 apex, 3 offset.

  With d = Delta and dd = Delta^2 of the SI (raw slopes, window ``window``): a candidate starts at the first run of
  STAB frames with d > 0 and ends where, after the SI fell below the midpoint of its start level and running peak
  with d < 0, d is again > 0 for STAB frames; onset runs from the start to the first local minimum of dd after the
  steepest rise, apex from there to the last knee of dd before the steepest fall, offset from there to the end;
  candidates shorter than MIN_LEN frames or with unordered boundaries are no smile (steps (a)-(g) of the spec).

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
  padded = np.zeros((1, bucketed(t_len, 64)))
  padded[0, :t_len] = si
  with jax.enable_x64(True):
    out = np.asarray(_phases_batch_jit(padded, np.array([n], np.int32), **params))[0, :t_len]
  return jnp.asarray(out)


def detect_phases_batch(
  si_BxT,
  lengths_B,
  *,
  window: int = 27,
  fps: float = BASE_FPS,
  legacy_edge: bool = True,
  stability: int = 3,
  min_smile_seconds: float = 1.0,
) -> jax.Array:
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
