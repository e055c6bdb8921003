"""Frame-wise AUDA features, 154 per frame (spec auda.md section 7), and the dynamics the segment statistics read."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from smilejax.auda.layout import AudaOptions, scaled_windows
from smilejax.auda.perf import runtime_one
from smilejax.auda.regression import trend_time_major


def framewise_core(au_BxTxA, si_BxT, lengths_B, *, fps: float, opts: AudaOptions, want_frame: bool):
  """Dynamics of a padded batch: (frame-wise features [B, T, 154] or None, series [B, T, C]).

  Frame-wise features of frame t (auda.md section 7, paper section 2.1), the columns of ``layout``:
  [x_a, Delta_w, adj Delta_w, Delta2_w, adj Delta2_w (A each, for every scaled window w), SI], with the dynamics of
  ``regression`` (adj Delta = Delta |r|; Delta2 from the raw Delta; edge rule at each real length); the AU values x
  are raw unless ``clip_au`` (clipped to [0, 5]). ``series``: what the segment statistics need, the first
  A (1 + 2 W) of those columns; zeros beyond each length. Everything is time-major (see :func:`trend_time_major`),
  so the columns are written side by side, never transposed.
  """
  x = au_BxTxA
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  if opts.clip_au:
    x = jnp.clip(x, 0.0, 5.0)
  dtype = x.dtype
  b, t_len, n_au = x.shape
  lengths = jnp.clip(lengths_B.astype(jnp.int32), 1, t_len)
  real = jnp.arange(t_len) < lengths[:, None]  # [B, T]
  x = jnp.where(real[:, :, None], x, 0.0)
  one = runtime_one(lengths)
  # float64 (x64 enabled by the caller: the validation path) evaluates bitwise like the sequential reference, so
  # even exact ties between slopes (first arg-max on ties, section 9) fall the same way; float32 is the fast path.
  exact = dtype == jnp.float64
  dyn = []
  for w in scaled_windows(opts, fps):
    d, _, da = trend_time_major(x, w, lengths, opts.legacy_edge, one, separate_products=exact)
    if want_frame:
      d2, _, d2a = trend_time_major(d, w, lengths, opts.legacy_edge, one, separate_products=exact)
    else:
      d2 = d2a = None
    dyn.append((d, da, d2, d2a))
  # the segment statistics read the first 1 + 2 W blocks of the frame-wise layout: x, delta_w..., delta_adj_w...
  blocks = [x] + [dk[0] for dk in dyn] + [dk[1] for dk in dyn]
  if not want_frame:
    return None, jnp.concatenate(blocks, axis=2)  # [B, T, A (1 + 2 W)]
  for q in (2, 3):  # delta2, delta2_adj; each for every window (section 7)
    blocks += [dk[q] for dk in dyn]
  # The SI (last column) broadcast to all columns, then every other block written in place into its columns
  # (dynamic-update-slices, each fused with the block's producer): XLA:CPU's concatenation along the minor axis
  # selects an operand per element (slow, benchmarks/README.md); a zero buffer instead of the broadcast would be
  # turned back into a (as slow) pad.
  n_d = sum(blk.shape[2] for blk in blocks) + 1
  frame = jnp.broadcast_to(jnp.where(real, si_BxT.astype(dtype), 0.0)[:, :, None], (b, t_len, n_d))
  col = 0
  for blk in blocks:
    frame = lax.dynamic_update_slice(frame, blk, (0, 0, col))
    col += blk.shape[2]  # [B, T, D]
  return frame, frame  # one output array: the series are its leading columns


@functools.partial(jax.jit, static_argnames=("fps", "opts", "want_frame"))
def framewise_jit(au_BxTxA, si_BxT, lengths_B, *, fps, opts, want_frame):
  """:func:`framewise_core`, compiled: the frame-wise features, or the series alone without ``want_frame``."""
  frame, series = framewise_core(au_BxTxA, si_BxT, lengths_B, fps=fps, opts=opts, want_frame=want_frame)
  return frame if want_frame else series  # with the frame-wise features, the series are its leading columns
