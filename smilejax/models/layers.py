"""Building blocks shared by the smilejax models (spec ``realsmilenet.md`` §3-§5, §7).

- PyTorch-default initialisers (spec §3 "Initialisation"): weights and biases of every conv and dense layer are
  drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), what ``kaiming_uniform_(a=sqrt(5))`` and PyTorch's bias rule give.
- :class:`MaskedBatchNorm`: BatchNorm whose training statistics come only from the entries a mask marks as real
  (spec §4), with PyTorch's running-average rule (momentum 0.1, unbiased running variance, eps 1e-5).
- :func:`safe_l2_norm`: sqrt(sum w^2) with a zero (not NaN) gradient at an all-zero tensor (spec §5, "NaN trap").
- CPU speed helpers for RealSmileNet: convolutions with hand-written exact gradients (:func:`conv_same`,
  channels-last, and :func:`conv_same_cf`, channels-first), their kernel gradient (:func:`conv_kernel_grad`) and
  :func:`fusion_barrier`; exact 2x2 pooling by reshape (the models only pool even-sized maps).
- :class:`JitInitModule`: the models' base class, whose ``init`` is compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Initializer = Callable[..., Array]

# U(-1/sqrt(fan_in), 1/sqrt(fan_in)): variance_scaling(scale=1/3, fan_in, uniform) has limit sqrt(3 * (1/3) / fan_in).
# Flax computes fan_in of a conv kernel (kh, kw, in, out) as kh * kw * in, and of a dense kernel (in, out) as in,
# exactly PyTorch's fan_in for the same layer.
torch_kernel_init: Initializer = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Initializer:
  """PyTorch's default bias initialiser for a layer with ``fan_in`` inputs: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / float(np.sqrt(fan_in)) if fan_in > 0 else 0.0

  def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_uniform_init(bound: float) -> Initializer:
  """U(-bound, bound) for any shape (PyTorch's ``nn.LSTM`` uses bound = 1/sqrt(hidden) for all its tensors)."""

  def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_conv(
  features: int, kernel_size: int, in_features: int, *, padding: str | int = "SAME", name: str | None = None
) -> nn.Conv:
  """A 2-D ``nn.Conv`` (NHWC, stride 1, with bias) initialised like PyTorch's ``nn.Conv2d``.

  ``in_features`` is only needed for the bias bound (fan_in = k * k * in_features).
  """
  return nn.Conv(
    features,
    (kernel_size, kernel_size),
    padding=padding,
    use_bias=True,
    kernel_init=torch_kernel_init,
    bias_init=torch_bias_init(kernel_size * kernel_size * in_features),
    name=name,
  )


def _while_identity(tree: Any) -> Any:
  # A while loop whose trip count XLA cannot know (0 or 1, from the data) and whose body is the identity: the loop
  # carry is a buffer, so what goes in is computed once and not fused into (and recomputed by) what comes out.
  leaves = jax.tree_util.tree_leaves(tree)
  # The middle element, not the first: the first of a zero-padded map is a constant, XLA would fold the trip count
  # and drop the loop.
  probe = leaves[0][tuple(d // 2 for d in leaves[0].shape)]
  trips = (probe == probe).astype(jnp.int32)  # 1, or 0 for NaN: either way the result is `tree` itself

  def body(carry):
    i, t = carry
    return i + 1, jax.tree_util.tree_map(lambda a: jnp.where(i < 0, jnp.zeros_like(a), a), t)

  return jax.lax.while_loop(lambda c: c[0] < trips, body, (jnp.int32(0), tree))[1]


@jax.custom_vjp
def fusion_barrier(tree: Any) -> Any:
  """Identity that makes XLA materialise ``tree`` (a pytree of arrays) instead of fusing it into its consumers.

  ``jax.lax.optimization_barrier`` is dropped by XLA's CPU pipeline before fusion, and XLA then fuses cheap-looking
  producers (a BatchNorm, a time difference, a small convolution) into every consumer, e.g. into each of a
  convolution's 27 taps, recomputing them there (slower; benchmarks/README.md). A data-dependent while loop is a
  boundary XLA keeps. The gradient is the identity (the cotangent goes through the same barrier).
  """
  return _while_identity(tree)


def _fusion_barrier_fwd(tree):
  return _while_identity(tree), None


def _fusion_barrier_bwd(_, g):
  return (_while_identity(g),)


fusion_barrier.defvjp(_fusion_barrier_fwd, _fusion_barrier_bwd)


def varying_like(a: Array, like: Array) -> Array:
  """``a`` marked as varying over the same ``jax.shard_map`` mesh axes as ``like`` (a no-op outside shard_map).

  A custom-VJP function's backward pass must return cotangents of the types of its inputs. Given a replicated kernel
  and a batch-split input, its kernel gradient varies over the batch axis; casting the kernel to varying first,
  outside the custom VJP, makes the types agree, and the cast's own transpose sums the gradient over the axis.
  """
  axes = tuple(sorted(jax.typeof(like).manual_axis_type.varying - jax.typeof(a).manual_axis_type.varying))
  return jax.lax.pcast(a, axes, to="varying") if axes else a


def lax_conv_same(x: Array, kernel: Array) -> Array:
  """'SAME' stride-1 ``lax.conv_general_dilated`` of ... x H x W x I with an HWIO kernel (XLA's own gradient)."""
  lead = x.shape[:-3]
  y = jax.lax.conv_general_dilated(
    x.reshape((-1,) + x.shape[-3:]), kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  return y.reshape(lead + y.shape[1:])


def _pad_hw(x: Array, r: int) -> Array:
  """Zero-pad the last two axes by r on each side."""
  return jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)])


def _windows(x: Array, k: int, *, padded: bool = False) -> list[Array]:
  """The k*k input windows of a 'SAME' k x k correlation of a map ... x H x W (``padded``: already zero-padded by
  k // 2 on H and W), in (dy, dx) order, each H x W: the correlation is the sum over taps of window[dy, dx] .
  K[dy, dx]."""
  xp = x if padded else _pad_hw(x, k // 2)
  h, w = xp.shape[-2] - k + 1, xp.shape[-1] - k + 1
  return [xp[..., dy : dy + h, dx : dx + w] for dy in range(k) for dx in range(k)]


KERNEL_GRAD_CHUNK_BYTES = 1 << 21  # patch matrix + cotangent per chunk: small enough to stay in the CPU's caches


def conv_kernel_grad(
  x: Array,
  g: Array,
  k: int,
  *,
  channels_first: bool = False,
  padded: bool = False,
  chunk_bytes: int = KERNEL_GRAD_CHUNK_BYTES,
) -> Array:
  """dL/dK[dy, dx, i, o] = sum over positions p of x_pad[p + (dy, dx) - r, i] * g[p, o], the kernel gradient of a
  'SAME' k x k correlation. ``x``: ... x H x W x I, or I x ... x H x W with ``channels_first``; ``g`` alike with
  O channels. ``padded`` (channels-first only): ``x`` is already zero-padded by k // 2 on H and W.

  Computed chunk by chunk over the leading (frame) axes, one matrix product per chunk,
  P (k k I x positions) . G^T (positions x O), where P stacks the k*k input windows channel-major. A chunk holds
  about ``chunk_bytes`` of P and G, so both stay in cache: on CPU this beats one dot per tap over all frames, an
  im2col over all frames at once and, by far, XLA's own kernel-gradient convolution (benchmarks/README.md).
  """
  if padded and not channels_first:
    raise ValueError("conv_kernel_grad: padded=True needs channels_first=True")
  if channels_first:  # I x N x H x W
    x, g = x.reshape(x.shape[0], -1, *x.shape[-2:]), g.reshape(g.shape[0], -1, *g.shape[-2:])
    frame_axis, (c_in, n), (c_out, _, h, w) = 1, x.shape[:2], g.shape
  else:  # N x H x W x I
    x, g = x.reshape(-1, *x.shape[-3:]), g.reshape(-1, *g.shape[-3:])
    frame_axis, (n, h, w, c_in), c_out = 0, x.shape, g.shape[-1]
  chunk = max(1, min(n, chunk_bytes // (h * w * (k * k * c_in + c_out) * 4)))
  while n % chunk:
    chunk -= 1

  def add_chunk(i, acc):
    xc, gc = [jax.lax.dynamic_slice_in_dim(a, i * chunk, chunk, frame_axis) for a in (x, g)]
    if not channels_first:
      # Channel-major, so windows are slices of the (H, W) axes and P is stacked along a major axis (block
      # copies); a minor-axis concatenation of 3- or 4-channel pieces is what made a single im2col slow.
      xc, gc = jnp.moveaxis(xc, -1, 0), jnp.moveaxis(gc, -1, 0)
    patches = jnp.stack(_windows(xc, k, padded=padded))  # [k k, I, chunk, h, w]
    return acc + jnp.dot(patches.reshape(k * k * c_in, -1), gc.reshape(c_out, -1).T)

  acc = varying_like(jnp.zeros((k * k * c_in, c_out), jnp.float32), x)  # a loop carry: typed like the products
  n_chunks = n // chunk
  if n_chunks == 1:
    acc = add_chunk(0, acc)
  else:  # two independent loops, which XLA's CPU runtime can run on two cores at once
    half = n_chunks // 2
    acc = jax.lax.fori_loop(0, half, add_chunk, acc) + jax.lax.fori_loop(half, n_chunks, add_chunk, jnp.zeros_like(acc))
  return acc.reshape(k, k, c_in, c_out)


def conv_same(x: Array, kernel_KxKxIxO: Array) -> Array:
  """'SAME' stride-1 convolution (cross-correlation, odd square kernel, no bias) of ... x H x W x I by
  ``lax.conv_general_dilated``, with a custom gradient.

  dL/dx is the same convolution of the cotangent with the spatially flipped, in/out-transposed kernel (the
  transpose of a 'SAME' correlation with an odd kernel) and dL/dK is :func:`conv_kernel_grad`; both are exactly
  the gradient. Why: XLA's own kernel-gradient convolution is very slow on CPU for these shapes (benchmarks/README.md).
  """
  return _conv_same(x, varying_like(kernel_KxKxIxO, x))


@jax.custom_vjp
def _conv_same(x: Array, kernel: Array) -> Array:
  return lax_conv_same(x, kernel)


def _conv_same_fwd(x, kernel):
  return lax_conv_same(x, kernel), (x, kernel)


def _conv_same_bwd(res, g):
  x, kernel = res
  return (lax_conv_same(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3)), conv_kernel_grad(x, g, kernel.shape[0]))


_conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


# --- Channels-first ("cnhw") representation ---------------------------------------------------------------------
# RealSmileNet's temporal attention and encoder maps have 3-6 channels. Held channels-last (N x H x W x C) the
# vectorised axis is 3-6 long; held channels-first (C x N x H x W, frames on a major axis) every tap of a
# convolution is a scalar times a shifted slice whose rows are 48 (or 24) contiguous floats, several times faster on
# CPU than channels-last code or XLA's own convolution for these channel counts (benchmarks/README.md).


def _conv_valid_cf(xp_Ix___xHpxWp: Array, kernel_KxKxIxO: Array) -> Array:
  """'VALID' correlation of a channels-first map (already padded for 'SAME'), as a sum of k*k*I
  scalar-times-window terms per output channel."""
  k, _, c_in, c_out = kernel_KxKxIxO.shape
  windows = _windows(xp_Ix___xHpxWp, k, padded=True)
  outs = []
  for o in range(c_out):
    acc = None
    for tap, window in enumerate(windows):
      for i in range(c_in):
        term = window[i] * kernel_KxKxIxO[tap // k, tap % k, i, o]
        acc = term if acc is None else acc + term
    outs.append(acc)
  return jnp.stack(outs)


def _conv_cf(x_Ix___xHxW: Array, kernel_KxKxIxO: Array) -> tuple[Array, Array]:
  """'SAME' correlation of a channels-first map; returns (output, the materialised padded input).

  The taps read only the padded copy, which is materialised once (whatever produced ``x`` is fused into the
  padding pass, not into every tap), and the taps read nothing else (faster than reading the unpadded input too).
  """
  xp = fusion_barrier(_pad_hw(x_Ix___xHxW, kernel_KxKxIxO.shape[0] // 2))
  return _conv_valid_cf(xp, kernel_KxKxIxO), xp


def conv_same_cf(x_Ix___xHxW: Array, kernel_KxKxIxO: Array) -> Array:
  """'SAME' stride-1 correlation (odd square kernel, no bias) of a channels-first map I x ... x H x W -> O x ... x
  H x W. Custom gradient, exact: dL/dx is the same correlation of the cotangent with the flipped, in/out-transposed
  kernel; dL/dK by chunked patch products (:func:`conv_kernel_grad`) over the padded input kept from the forward."""
  return _conv_same_cf(x_Ix___xHxW, varying_like(kernel_KxKxIxO, x_Ix___xHxW))


@jax.custom_vjp
def _conv_same_cf(x: Array, kernel: Array) -> Array:
  return _conv_cf(x, kernel)[0]


def _conv_same_cf_fwd(x, kernel):
  y, xp = _conv_cf(x, kernel)
  return y, (xp, kernel)


def _conv_same_cf_bwd(res, g):
  xp, kernel = res
  g = fusion_barrier(g)  # read by both products below: computed once, not fused into each
  dx = fusion_barrier(_conv_cf(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))[0])
  return dx, conv_kernel_grad(xp, g, kernel.shape[0], channels_first=True, padded=True)


_conv_same_cf.defvjp(_conv_same_cf_fwd, _conv_same_cf_bwd)


def avg_pool2_cf(x_Cx___xHxW: Array) -> Array:
  """2x2 average pooling, stride 2, over the last two axes (H and W even)."""
  *lead, h, w = x_Cx___xHxW.shape
  y = x_Cx___xHxW.reshape(*lead, h // 2, 2, w // 2, 2)
  return ((y[..., 0, :, 0] + y[..., 0, :, 1]) + (y[..., 1, :, 0] + y[..., 1, :, 1])) * 0.25


CONV_IMPLS = ("cnhw", "lax")


class SmallConv(nn.Module):
  """A 'SAME' stride-1 conv layer (odd square kernel) with params ``kernel`` (k, k, I, O) and ``bias`` (O,)
  (PyTorch-default inits unless given), computed by :func:`conv_same` on ... x H x W x I, or with
  ``channels_first`` by :func:`conv_same_cf` on I x ... x H x W (output O x ... x H x W). Same parameters in both.
  """

  features: int
  kernel_size: int = 3
  kernel_init: Initializer | None = None
  bias_init: Initializer | None = None
  channels_first: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c_in = x.shape[0] if self.channels_first else x.shape[-1]
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init or torch_kernel_init, (k, k, c_in, self.features), jnp.float32)
    bias = self.param("bias", self.bias_init or torch_bias_init(k * k * c_in), (self.features,), jnp.float32)
    if self.channels_first:
      return conv_same_cf(x, kernel) + bias.reshape((-1,) + (1,) * (x.ndim - 1))
    return conv_same(x, kernel) + bias


def torch_dense(features: int, in_features: int, *, name: str | None = None) -> nn.Dense:
  """``nn.Dense`` initialised like PyTorch's ``nn.Linear`` (weights and bias U(+-1/sqrt(in_features)))."""
  return nn.Dense(features, kernel_init=torch_kernel_init, bias_init=torch_bias_init(in_features), name=name)


def _pool2(x_NxHxWxC: Array, combine) -> Array:
  # Pairs of rows, then pairs of columns, combined elementwise: XLA fuses this into one loop, whereas a
  # reduce over the split axes (or reduce_window) is much slower on CPU for these small maps (benchmarks/README.md).
  *lead, h, w, c = x_NxHxWxC.shape
  y = x_NxHxWxC.reshape(*lead, h // 2, 2, w // 2, 2 * c)
  y = combine(y[..., 0, :, :], y[..., 1, :, :])
  y = y.reshape(*lead, h // 2, w // 2, 2, c)
  return combine(y[..., 0, :], y[..., 1, :])


def avg_pool2(x_NxHxWxC: Array) -> Array:
  """2x2 average pooling, stride 2 (H and W must be even; exact, no padding)."""
  return _pool2(x_NxHxWxC, jnp.add) * 0.25


def max_pool2(x_NxHxWxC: Array) -> Array:
  """2x2 max pooling, stride 2 (H and W must be even)."""
  return _pool2(x_NxHxWxC, jnp.maximum)


class RowDropout(nn.Module):
  """Dropout (inverted: kept entries scaled by 1 / (1 - rate)) whose keep mask for batch row b is drawn from
  ``fold_in(key, row_offset + b)``, ``key`` from the ``dropout`` rng stream.

  Row b's mask is thus the same whether the batch runs whole or split over devices (``row_offset`` = the global
  index of the first local row), so a data-parallel training step (``smilejax.train``) computes what one device
  would. ``broadcast_dims``: axes of ``x`` sharing one decision (e.g. (2, 3) for Dropout2d over B x T x H x W x C).
  """

  rate: float
  broadcast_dims: Sequence[int] = ()

  @nn.compact
  def __call__(self, x: Array, *, deterministic: bool, row_offset: Array | int = 0) -> Array:
    if deterministic or self.rate == 0.0:
      return x
    keep_prob = 1.0 - self.rate
    key = self.make_rng("dropout")
    row_shape = tuple(1 if d in self.broadcast_dims else n for d, n in enumerate(x.shape))[1:]
    rows = row_offset + jnp.arange(x.shape[0])
    keep = jax.vmap(lambda r: jax.random.bernoulli(jax.random.fold_in(key, r), keep_prob, row_shape))(rows)
    return jnp.where(keep, x / keep_prob, 0.0) if keep_prob > 0.0 else jnp.zeros_like(x)


def lstm_gates(z: Array, c_prev: Array) -> tuple[Array, ...]:
  """LSTM gates from the pre-activations z = [z_i, z_f, z_o, z_g] (last axis): i, f, o = sigmoid, g = tanh,
  c = f c_prev + i g, h = o tanh(c). Returns (i, f, o, g, c, tanh(c), h) (the backward passes reuse the gates).

  The three sigmoids are sigmoid(x) = (1 + tanh(x / 2)) / 2, so one tanh runs over all of z: faster on CPU than
  separate sigmoids, and equal to them within a few float32 ulps (benchmarks/README.md)."""
  hid = z.shape[-1] // 4
  half = jnp.asarray(np.repeat([0.5, 0.5, 0.5, 1.0], hid), z.dtype)
  t = jnp.tanh(z * half)
  i, f, o = jnp.split(0.5 * t[..., : 3 * hid] + 0.5, 3, axis=-1)
  g = t[..., 3 * hid :]
  c_new = f * c_prev + i * g
  tc = jnp.tanh(c_new)
  return i, f, o, g, c_new, tc, o * tc


def time_mask(lengths_B: Array, t: int) -> Array:
  """m_{b,t} = [t < L_b] as a bool array [B, T] (spec §4; padding is at the end)."""
  return jnp.arange(t)[None, :] < jnp.asarray(lengths_B)[:, None]


@jax.custom_jvp
def safe_l2_norm(x: Array) -> Array:
  """||x||_2 = sqrt(sum x^2) over all entries (unsquared), with gradient x/||x|| and **0** where x is all zeros.

  A plain ``jnp.sqrt(jnp.sum(x**2))`` has gradient 0/0 = NaN at x = 0; the non-local BatchNorm gamma and beta start
  exactly there (spec §3.4, §5 "NaN trap"). PyTorch's ``norm`` returns a zero subgradient at 0; so does this.
  """
  return jnp.sqrt(jnp.sum(jnp.square(x)))


@safe_l2_norm.defjvp
def _safe_l2_norm_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  norm = jnp.sqrt(jnp.sum(jnp.square(x)))
  # Divide by 1 where the norm is 0: the numerator sum(x * dx) is then 0 too, so the derivative is exactly 0.
  safe = jnp.where(norm > 0, norm, 1.0)
  return norm, jnp.sum(x * dx) / safe


class JitInitModule(nn.Module):
  """Base class of the smilejax models: ``init`` runs under ``jax.jit``.

  Eager ``Module.init`` dispatches (and compiles) every primitive of the forward pass one at a time, which for
  RealSmileNet is far slower than one compiled ``init`` (benchmarks/README.md). Keyword arguments
  (e.g. ``train=False``, ``method=``, ``mutable=``) are static; positional ones are traced. Results are identical.
  """

  @nn.nowrap
  def init(self, rngs, *args, **kwargs):
    return jax.jit(lambda r, *a: nn.Module.init(self, r, *a, **kwargs))(rngs, *args)


class MaskedBatchNorm(nn.Module):
  """BatchNorm over the last (or, with ``channels_first``, the first) axis whose statistics use only the entries
  marked real (spec §4).

  For features x (..., C) and a bool ``mask`` covering the leading axes of x (shape ``x.shape[:mask.ndim]``, e.g.
  [B, T] for frames B x T x H x W x C; ``None`` = everything real), or x (C, ...) with the mask covering the axes
  right after the channel axis, in training:

      n   = (number of real entries along all non-channel axes)  = H * W * sum(m)   for frames
      mu  = sum(m * x) / n,     var = sum(m * (x - mu)^2) / n          (biased, used to normalise)
      y   = gamma * (x - mu) / sqrt(var + eps) + beta
      running_mean <- momentum * running_mean + (1 - momentum) * mu
      running_var  <- momentum * running_var  + (1 - momentum) * var * n / (n - 1)     (unbiased, as PyTorch)

  ``momentum=0.9`` here is PyTorch's ``momentum=0.1``. Entries outside the mask never enter the statistics (their
  values, even NaN or inf, cannot change them); they are still normalised (with the real entries' statistics).
  Evaluation (``use_running_average=True``) uses the running statistics and ignores the mask.
  The running statistics are not touched during ``init``. n is clamped to >= 1 and the unbiased factor uses
  max(n - 1, 1), so an all-padded batch or a single entry gives finite values (PyTorch would raise instead).
  Parameters ``scale`` (gamma) and ``bias`` (beta); collection ``batch_stats`` holds ``mean`` and ``var``,
  the same names as ``flax.linen.BatchNorm``.
  """

  momentum: float = 0.9
  epsilon: float = 1e-5
  scale_init: Initializer = nn.initializers.ones
  bias_init: Initializer = nn.initializers.zeros
  channels_first: bool = False  # x is C x ... (the mask then covers the axes right after the channel axis)
  # Inside jax.shard_map over a batch split on mesh axis ``axis_name``: the statistics are those of the whole batch
  # (the sums and counts are psum-ed over the axis), so a data-parallel step normalises as one device would.
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, *, use_running_average: bool) -> Array:
    cf = self.channels_first
    c = x.shape[0] if cf else x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    scale = self.param("scale", self.scale_init, (c,), jnp.float32)
    bias = self.param("bias", self.bias_init, (c,), jnp.float32)
    other = x.shape[1:] if cf else x.shape[:-1]  # the non-channel axes, statistics are taken over all of them
    axes = tuple(range(1, x.ndim)) if cf else tuple(range(x.ndim - 1))

    def per_channel(v):  # a (C,) vector broadcast against x
      return v.reshape((c,) + (1,) * (x.ndim - 1)) if cf else v

    def total(v):  # a sum over the local batch -> over the whole batch
      return v if self.axis_name is None else jax.lax.psum(v, self.axis_name)

    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      if mask is None:
        n = total(jnp.asarray(float(np.prod(other)), jnp.float32))
        mean = total(jnp.sum(x, axis=axes)) / n
        var = total(jnp.sum(jnp.square(x - per_channel(mean)), axis=axes)) / n
      else:
        mask = jnp.asarray(mask, bool)
        if mask.shape != other[: mask.ndim] or mask.ndim >= x.ndim:
          raise ValueError(
            f"MaskedBatchNorm: mask shape {mask.shape} must be a leading prefix of the non-channel "
            f"axes of x with shape {x.shape}"
          )
        n_entries, per_entry = mask.size, int(np.prod(other[mask.ndim :]))  # e.g. B * T frames of H * W each
        n = jnp.maximum(total(jnp.sum(mask.astype(jnp.float32))) * per_entry, 1.0)

        def masked_sum(v):
          # Sum over each mask entry first (contiguous), then over the real entries: where() on the small per-entry
          # sums, not on v, so a padded NaN/inf cannot reach the statistics (0 * inf = NaN), at a fraction of the
          # cost of masking every element (benchmarks/README.md).
          if cf:
            per_entry_sums = jnp.sum(v.reshape(c, n_entries, per_entry), 2)
            return total(jnp.sum(jnp.where(mask.reshape(1, n_entries), per_entry_sums, 0.0), 1))
          per_entry_sums = jnp.sum(v.reshape(n_entries, per_entry, c), 1)
          return total(jnp.sum(jnp.where(mask.reshape(n_entries, 1), per_entry_sums, 0.0), 0))

        mean = masked_sum(x) / n
        var = masked_sum(jnp.square(x - per_channel(mean))) / n
      if not self.is_initializing():
        unbiased = var * n / jnp.maximum(n - 1.0, 1.0)
        ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * jax.lax.stop_gradient(mean)
        ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * jax.lax.stop_gradient(unbiased)

    inv = per_channel(jax.lax.rsqrt(var + self.epsilon) * scale)
    return (x - per_channel(mean)) * inv + per_channel(bias)
