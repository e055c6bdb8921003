"""Performance devices of the AUDA code: each a numerical no-op or an exact rewrite, kept apart from the math.

XLA:CPU fuses cheap element-wise producers into every consumer (re-computing them), runs its own reductions and
cumulative extremes one element at a time, and compiles once per shape. The helpers below steer around that:
``materialize`` / ``runtime_one`` (compute an intermediate once), ``reduce_major`` and ``cum_extreme`` (reductions as
trees of element-wise operations), ``bucketed`` (few distinct shapes). Measurements: benchmarks/README.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def materialize(x: jax.Array, one: jax.Array | None) -> jax.Array:
  """``x / one`` with ``one`` a runtime 1.0: numerically the identity (IEEE division by 1 is exact), but XLA treats a
  floating division as expensive and does not duplicate it into every consumer fusion, so an intermediate that many
  window slices read (the padded series, the window means, the sums) is computed once instead of once per slice.
  Floating arrays only (integer ones are carried as floats where this matters, see :func:`cum_extreme`). With
  ``one=None`` it is a no-op."""
  return x if one is None else x / one.astype(x.dtype)


def runtime_one(lengths: jax.Array) -> jax.Array:
  """A 1.0 that XLA cannot constant-fold (derived from the lengths): see :func:`materialize`."""
  return jnp.where(jnp.min(lengths) > -1, 1.0, 2.0)


def bucketed(n: int, bucket: int) -> int:
  """``n`` rounded up to a multiple of ``bucket``, at least ``bucket`` (``bucket`` 0: ``n``): one compiled shape
  serves many lengths."""
  return max(bucket, -(-n // bucket) * bucket) if bucket else n


def shift(a: jax.Array, i: int, fill) -> jax.Array:
  """a[..., k + i] along the last axis (i < 0 looks back), ``fill`` outside."""
  if i == 0:
    return a
  pad = jnp.full(a.shape[:-1] + (abs(i),), fill, a.dtype)
  if i > 0:
    return jnp.concatenate([a[..., i:], pad], axis=-1)
  return jnp.concatenate([pad, a[..., :i]], axis=-1)


def cum_extreme(a: jax.Array, op, fill, *, reverse: bool = False, one=None) -> jax.Array:
  """Running min / max along the last axis (``op`` = jnp.minimum / jnp.maximum; from the end with ``reverse``), by
  doubling: log2(T) element-wise passes over shifted copies. Exact (min / max are idempotent); XLA:CPU's
  ``cummin`` / ``cummax`` (a reduce-window) is several times slower. ``one`` (see :func:`materialize`): each pass is
  materialised -- otherwise XLA fuses the passes into one loop that re-evaluates every earlier pass twice per pass
  (2^log2(T) = T reads per element). Integer input is carried as floats for that (exact below 2^24)."""
  dtype = a.dtype
  if one is not None and not jnp.issubdtype(dtype, jnp.floating):
    a = a.astype(one.dtype)
  step = 1
  while step < a.shape[-1]:
    a = materialize(op(a, shift(a, step if reverse else -step, fill)), one)
    step *= 2
  return a.astype(dtype)


def reduce_major(a, op, fill, one=None, k: int = 8) -> jax.Array:
  """op-reduction over the major axis 0, as a k-ary tree of element-wise ops on contiguous slices: every level is
  one vectorised loop over whole rows (XLA:CPU's own reduce over a major axis walks each output element's column
  with a stride, several times slower).

  ``one`` (see :func:`materialize`): every level is materialised; otherwise XLA fuses the cheap-looking levels into
  their consumers and re-evaluates the whole tree for every element that reads the result."""

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
      acc = op(acc, a[i * m : (i + 1) * m])
    a = materialize(acc, one)
  return a[0]
