"""Centred sliding-window linear regression of a series: trend, dynamics (spec auda.md sections 2-4, paper section
2.1).

Numerics (section 2): every window is summed in two passes (window mean first, then centred sums) over ``omega``
shifted slices of the edge-padded series -- no running sums, which lose digits; the float32 fast path used for the
features centres its sums on the window's middle sample instead (:func:`_regress_centred`). A constant window is
detected exactly (no two neighbouring samples differ; never ``S_vv == 0``): then r := 1 and delta := 0. Divisions and
square roots are guarded with ``where``, so values and gradients are finite everywhere. With ``separate_products``
(phases, float64 features) the sums evaluate bitwise like a sequential program, so mathematically tied slopes stay
tied (XLA would otherwise contract multiply-adds and turn divisions into reciprocal multiplications).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from smilejax.auda.perf import materialize, runtime_one


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


def _regress(
  xp: jax.Array,
  t_len: int,
  window: int,
  one=None,
  separate_products: bool = False,
  *,
  stride: int = 1,
  need_r: bool = True,
):
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
  float32 fast path does without it (benchmarks/README.md has the check on 70k windows).

  ``stride``: the series is time-major with ``stride`` interleaved channels flattened into the last axis (element
  ``t * stride + c``), so that window slice j is the contiguous slice starting at ``j * stride`` and the result is
  already in [.., T, C] order (no transpose of the frame-wise features); ``t_len`` counts frames. The arithmetic per
  element is the same as with ``stride=1``. ``need_r=False`` (the phase detector): skip S_vv, return (delta, None).
  """
  tbar = (window - 1) / 2.0
  n_out = t_len * stride
  cols = [xp[..., j * stride : j * stride + n_out] for j in range(window)]
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
  mean = materialize(total / w_div, one)
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
  s_tv = materialize(s_tv, one)
  if changes is None:
    # Constant window (the exact test "max == min") <=> no two neighbouring samples differ: count the changes in
    # the window's w - 1 neighbour pairs, a box sum of 0/1 flags (exact) built by doubling (log2 w passes, not w).
    flags = (xp[..., stride:] != xp[..., :-stride]).astype(xp.dtype)
    changes = _box_sum(materialize(flags, one), window - 1, n_out, one, stride=stride)
  if s_vv is None:  # the same delta as below, without S_vv and r
    return jnp.where(changes > 0, s_tv / (s_tt * unit), 0.0).astype(xp.dtype), None
  # One stored array carries both S_vv (>= 0) and the constant flag (-1), so the flag is computed only once.
  key = materialize(jnp.where(changes > 0, s_vv, -1.0), one)
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
  costs nothing, unlike the change count of :func:`_slope_and_r` (which the float64 path keeps).
  """
  h = window // 2
  n_out = t_len * stride

  def col(j):
    return xp[..., j * stride : j * stride + n_out]

  mid = col(h)
  s1 = s2 = s_tv = None
  for k in range(1, h + 1):
    ep, em = col(h + k) - mid, col(h - k) - mid
    s1 = ep + em if s1 is None else s1 + ep + em
    s2 = ep * ep + em * em if s2 is None else s2 + ep * ep + em * em
    dk = col(h + k) - col(h - k)  # = ep - em, one operation fewer (and no rounding of ep, em in it)
    s_tv = k * dk if s_tv is None else s_tv + k * dk
  return _slope_and_r(xp, s_tv, jnp.maximum(s2 - s1 * s1 / window, 0.0), window, n_out, one, stride=stride, changes=s2)


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
    levels[2 * size] = materialize(prev[..., :n] + prev[..., size * stride : size * stride + n], one)
    size *= 2
  total, offset = None, 0
  for size in sorted(levels, reverse=True):
    if width - offset >= size:
      part = levels[size][..., offset * stride : offset * stride + n_out]
      total = part if total is None else total + part
      offset += size
  return total


def trend_padded(
  x, window: int, length, legacy_edge: bool, one=None, separate_products: bool = False, need_r: bool = True
):
  """(delta, r, delta_adj) of series x [..., T] with real lengths ``length`` [...] (traceable core of :func:`trend`);
  zeros beyond each length. ``need_r=False``: (delta, None, None)."""
  t_len = x.shape[-1]
  h = window // 2
  xp = materialize(_edge_padded(x, h, length, legacy_edge), one)
  delta, r = _regress(xp, t_len, window, one, separate_products, need_r=need_r)
  real = jnp.arange(t_len) < length[..., None]
  delta = jnp.where(real, delta, 0.0)
  if not need_r:
    return delta, None, None
  r = jnp.where(real, r, 0.0)
  return delta, r, delta * jnp.abs(r)


def trend_time_major(x_BxTxC, window: int, lengths_B, legacy_edge: bool, one=None, separate_products: bool = False):
  """:func:`trend_padded` of C series stored time-major, x [B, T, C] (regressed along T): (delta, r, delta_adj),
  each [B, T, C].

  The edge-padded series [B, T + 2h, C] is flattened to [B, (T + 2h) C], so every window slice is one contiguous
  slice (see ``stride`` in :func:`_regress`) and the results come out in the frame-wise features' [B, T, .] order.
  Per element the arithmetic is that of :func:`trend_padded`, so the values are the same (bitwise in float64).
  """
  b, t_len, n_c = x_BxTxC.shape
  h = window // 2
  first = x_BxTxC[:, :1]
  last = jnp.take_along_axis(x_BxTxC, jnp.broadcast_to((lengths_B - 1)[:, None, None], (b, 1, n_c)), axis=1)
  # A real frame's window reads x'[k] for k < L + h only: the zero-padded series with the first value written over
  # the h frames before it and then (it wins) the last value over k = L - h .. L + h - 1 (legacy; L .. L + h - 1
  # otherwise), per video. Frames beyond hold zeros, which no real frame reads. (Written as slices: selects over the
  # whole padded series with first / last broadcast along time cost a per-element channel look-up.)
  xp = jnp.pad(x_BxTxC, ((0, 0), (h, h), (0, 0)))
  xp = lax.dynamic_update_slice(xp, jnp.broadcast_to(first, (b, h, n_c)), (0, 0, 0))
  n_last, start = (2 * h, lengths_B) if legacy_edge else (h, lengths_B + h)  # start in padded frames: k + h
  xp = jax.vmap(lambda a, v, s0: lax.dynamic_update_slice(a, jnp.broadcast_to(v, (n_last, n_c)), (s0, 0 * s0)))(
    xp, last, start
  ).reshape(b, (t_len + 2 * h) * n_c)
  if separate_products:
    delta, r = _regress(materialize(xp, one), t_len, window, one, separate_products, stride=n_c)
  else:
    delta, r = _regress_centred(materialize(xp, one), t_len, window, one, stride=n_c)
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
  """Centred sliding-window least-squares line of a series (auda.md sections 2-3, paper section 2.1).

  For the window v_0 .. v_{w-1} around frame t (abscissae j, t_bar = (w - 1) / 2, edge rule of section 3):
  S_tt = w (w^2 - 1) / 12, S_tv = sum_j (j - t_bar)(v_j - mean), S_vv = sum_j (v_j - mean)^2;
  delta = S_tv / S_tt, r = S_tv / sqrt(S_tt S_vv), delta_adj = delta |r| (constant window: delta = 0, r = 1).
  Checked against the original program's output (section 4).

  Args:
    x: [T] (or [..., T], regressed along the last axis), any T >= 1; float32 or float64.
    window: odd window in frames (already scaled to the frame rate, see ``layout.scale_window``).
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
  """First and second order (auda.md section 2, paper section 2.1): (delta, r, delta_adj) = trend(x), then
  (delta2, r2, delta2_adj) = trend(delta) with the same window and edge rule (delta2_adj = delta2 |r2|).
  Arguments as :func:`trend`."""
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
  return trend_padded(x, window, lengths, legacy_edge, runtime_one(lengths))


@functools.partial(jax.jit, static_argnames=("window", "legacy_edge"))
def _dynamics_jit(x, lengths, *, window, legacy_edge):
  one = runtime_one(lengths)
  d, r, da = trend_padded(x, window, lengths, legacy_edge, one)
  d2, r2, d2a = trend_padded(d, window, lengths, legacy_edge, one)
  return Dynamics(d, r, da, d2, r2, d2a)


def second_order_trend(x, *, window: int, legacy_edge: bool = True, length=None):
  """Second-order dynamics (auda.md section 2): ``(delta2, r2, delta2_adj) = trend(delta)``, delta the raw slope
  of :func:`trend` of ``x``; delta2_adj = delta2 |r2|."""
  dyn = dynamics(x, window=window, legacy_edge=legacy_edge, length=length)
  return dyn.delta2, dyn.r2, dyn.delta2_adj
