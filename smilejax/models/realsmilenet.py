"""RealSmileNet, the official ``org`` model, ported to Flax Linen (spec ``realsmilenet.md`` §1, §3, §4).

One video of T real frames x_t (48 x 48 x 3, values in [0, 1], NHWC) goes through
1. temporal attention  x'_t = x_t + x_t * Conv3x3_{3->3}(x_t - x_{t-1}),  with x_{-1} := x_0 (no difference at t=0);
2. a frame encoder shared over frames: BN(3) -> Conv3x3 3->4 -> BN -> ReLU -> AvgPool2 -> Conv3x3 4->6 -> BN -> ReLU
   -> AvgPool2 -> Dropout2d(0.2) (12 x 12 x 6 per frame), its BatchNorms fed by real frames only;
3. a ConvLSTM (hidden 8) from a zero state, [i, f, o, g] = Conv3x3_{14->32}([x_t ; h_{t-1}]), c_t = sig(f) c_{t-1}
   + sig(i) tanh(g), h_t = sig(o) tanh(c_t), moved only on real frames: output h after the last one (12 x 12 x 8);
4. a dot-product non-local block, z = h + BN(Conv1x1_{4->8}(F g)), F = theta phi^T / 36 (gamma = beta = 0 at init);
5. the final branch AvgPool2 -> Conv2x2_{8->10} (valid) -> BN -> ReLU -> Dropout(0.5) -> flatten (250 features);
6. the classifier Dense 250 -> 1, a logit (probability = sigmoid(logit)). 5,273 parameters, 62 BN statistics (§1).
Option beyond [O]: ``forget_bias`` adds a constant to the ConvLSTM forget-gate bias at init (0, the default, is [O]'s
init; configs/default.py uses 3 on the synthetic corpus, where the model otherwise stays at chance).
Batching (§4): videos padded at the end come with ``lengths_B``; padded frames are zeroed on entry and reach no
BatchNorm statistic nor the recurrence, so in evaluation mode a video's outputs equal those of it run alone. A
length-0 video (a batch filler) also stays out of the per-video BatchNorms (non-local, final branch) in training.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from smilejax.models.layers import (
  CONV_IMPLS,
  Array,
  JitInitModule,
  MaskedBatchNorm,
  RowDropout,
  SmallConv,
  avg_pool2,
  avg_pool2_cf,
  conv_kernel_grad,
  conv_same,
  fusion_barrier,
  lax_conv_same,
  lstm_gates,
  max_pool2,
  time_mask,
  torch_bias_init,
  torch_conv,
  torch_dense,
  torch_kernel_init,
  varying_like,
)


def ta_kernel_init(key: Array, shape, dtype=jnp.float32) -> Array:
  """Temporal-attention kernel (kh, kw, in, out): 1 at the kernel centre for every (in, out) pair, 0 elsewhere.

  At init each output channel is the sum of the three channel differences at the same pixel (spec §3.1).
  """
  del key
  kh, kw = shape[0], shape[1]
  return jnp.zeros(shape, dtype).at[kh // 2, kw // 2].set(1.0)


def _time_diff(x: Array, axis: int = 1) -> Array:
  """D_t = x_t - x_{t-1} along the time axis, D_0 = 0."""
  first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
  return jnp.concatenate([jnp.zeros_like(first), jnp.diff(x, axis=axis)], axis=axis)


class TemporalAttention(nn.Module):
  """x'_t = x_t + x_t * Conv3x3(D_t), D_t = x_t - x_{t-1}, D_0 = 0 (spec §3.1).

  Input B x T x H x W x C, or with ``channels_first`` C x B x T x H x W; the output is held the same way.
  """

  channels_first: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cf = self.channels_first
    conv = SmallConv(
      x.shape[0] if cf else x.shape[-1],
      3,
      kernel_init=ta_kernel_init,
      bias_init=nn.initializers.zeros,
      channels_first=cf,
      name="conv",
    )
    y = x + x * conv(_time_diff(x, axis=2 if cf else 1))
    # channels-first: materialised, read by bn0's statistics and normalisation (the convolution materialises its input)
    return fusion_barrier(y) if cf else y


class FrameEncoder(nn.Module):
  """BN -> Conv3x3 3->4 -> BN -> ReLU -> AvgPool2 -> Conv3x3 4->6 -> BN -> ReLU -> AvgPool2 -> Dropout2d (§3.2).

  Input B x T x H x W x C, or C x B x T x H x W with ``conv_impl="cnhw"`` (then materialised between stages,
  see ``layers.fusion_barrier``). Output B x T x H/4 x W/4 x 6.
  """

  channels: tuple[int, int] = (4, 6)
  dropout: float = 0.2
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  conv_impl: str = "cnhw"
  batch_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: Array, mask_BxT: Array, *, train: bool, row_offset: Array | int = 0) -> Array:
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")
    cf = self.conv_impl == "cnhw"
    barrier = fusion_barrier if cf else (lambda a: a)

    def bn(name):
      return MaskedBatchNorm(
        momentum=self.bn_momentum, epsilon=self.bn_epsilon, channels_first=cf, axis_name=self.batch_axis_name, name=name
      )

    x = bn("bn0")(x, mask_BxT, use_running_average=not train)
    for i, c_out in enumerate(self.channels):
      y = SmallConv(c_out, 3, channels_first=cf, name=f"conv{i + 1}")(x)
      if train:  # BN statistics read y twice more: compute it once
        y = barrier(y)
      y = bn(f"bn{i + 1}")(y, mask_BxT, use_running_average=not train)
      x = barrier((avg_pool2_cf if cf else avg_pool2)(nn.relu(y)))
    if cf:
      x = jnp.moveaxis(x, 0, -1)  # B x T x H/4 x W/4 x C for the ConvLSTM
    # Dropout2d: one keep/drop decision per (video, frame, channel), shared over H and W.
    return RowDropout(self.dropout, broadcast_dims=(2, 3))(x, deterministic=not train, row_offset=row_offset)


def conv_lstm_step(gx_BxHxWxG: Array, c_prev: Array, h_prev: Array, kernel_h: Array) -> tuple[Array, Array]:
  """One ConvLSTM step given the input half of the gates: z = gx + Conv3x3(h_prev; kernel_h),
  [i, f, o, g] = split(z); c = sig(f) c_prev + sig(i) tanh(g); h = sig(o) tanh(c). Returns (c, h).

  Custom gradient (exact): with dc = dc_out + dh_out sig(o) (1 - tanh(c)^2), dz = [dc g i(1-i), dc c_prev f(1-f),
  dh_out tanh(c) o(1-o), dc i (1-g^2)]; dgx = dz, dc_prev = dc f, dh_prev = a forward-style convolution of dz with
  the flipped, in/out-transposed kernel, and dL/dkernel_h = corr(h_prev, dz) as one patch product over all positions
  (``layers.conv_kernel_grad``). Why: XLA's own transpose of this convolution w.r.t. the kernel is a kernel-gradient
  convolution per step, very slow on CPU for these shapes (benchmarks/README.md). Inside ``jax.shard_map`` the
  replicated kernel is cast to vary like the state first (``layers.varying_like``), as ``conv_same`` does.
  """
  return _conv_lstm_step(gx_BxHxWxG, c_prev, h_prev, varying_like(kernel_h, h_prev))


@jax.custom_vjp
def _conv_lstm_step(gx, c_prev, h_prev, kernel_h):
  return _conv_lstm_step_fwd(gx, c_prev, h_prev, kernel_h)[0]


def _conv_lstm_step_fwd(gx, c_prev, h_prev, kernel_h):
  z = gx + lax_conv_same(h_prev, kernel_h)
  c_new, h_new = lstm_gates(z, c_prev)[4::2]
  return (c_new, h_new), (z, c_prev, h_prev, kernel_h)


def _conv_lstm_step_bwd(res, cotangents):
  z, c_prev, h_prev, kernel_h = res
  dc_out, dh_out = cotangents
  i, f, o, g, _, tc, _ = lstm_gates(z, c_prev)
  dc = dc_out + dh_out * o * (1.0 - tc * tc)
  dz = jnp.concatenate(
    [dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dh_out * tc * o * (1.0 - o), dc * i * (1.0 - g * g)], axis=-1
  )
  kernel_t = jnp.flip(kernel_h, (0, 1)).swapaxes(2, 3)
  return dz, dc * f, lax_conv_same(dz, kernel_t), conv_kernel_grad(h_prev, dz, kernel_h.shape[0])


_conv_lstm_step.defvjp(_conv_lstm_step_fwd, _conv_lstm_step_bwd)


class ConvLSTMCell(nn.Module):
  """One masked time step (the body scanned by :class:`ConvLSTMRecurrence`); no parameters of its own.

  ``carry`` = (c, h), each B x H x W x hidden; ``gx`` = the input half of the gates at this step (B x H x W x 4
  hidden); ``m_B`` = which videos have a real frame at this step; ``kernel_h`` = the hidden half of the gate kernel
  (broadcast over steps). (c, h) := where(m, new, old) (spec §4).
  """

  @nn.compact
  def __call__(
    self, carry: tuple[Array, Array], gx_BxHxWxG: Array, m_B: Array, kernel_h: Array
  ) -> tuple[tuple[Array, Array], None]:
    c_prev, h_prev = carry
    c_new, h_new = conv_lstm_step(gx_BxHxWxG, c_prev, h_prev, kernel_h)
    m = m_B[:, None, None, None]
    return (jnp.where(m, c_new, c_prev), jnp.where(m, h_new, h_prev)), None


class ConvLSTMRecurrence(nn.Module):
  """The ConvLSTM recurrence over time, ``flax.linen.scan`` of :class:`ConvLSTMCell` from a zero state.

  ``__call__(gx_TxBxHxWxG, mask_TxB, kernel_h)`` -> h after each video's last real step (B x H x W x hidden).
  Time-major inputs are scanned (axis 0), ``kernel_h`` is broadcast; no parameters (the caller owns the kernel, so
  the parameter tree is that of the official model: one 3x3x14x32 kernel and one bias).
  """

  unroll: int = 1

  @nn.compact
  def __call__(self, gx_TxBxHxWxG: Array, mask_TxB: Array, kernel_h: Array) -> Array:
    # zeros_like of the input: inside jax.shard_map the state then varies over the batch axis, as the input does
    zeros = jnp.zeros_like(gx_TxBxHxWxG[0, ..., : kernel_h.shape[-2]])
    scan = nn.scan(
      ConvLSTMCell,
      variable_broadcast="params",
      split_rngs={"params": False},
      in_axes=(0, 0, nn.broadcast),
      out_axes=0,
      unroll=self.unroll,
    )
    (_, h_last), _ = scan(name="cell")((zeros, zeros), gx_TxBxHxWxG, mask_TxB, kernel_h)
    return h_last


def masked_conv_lstm(gx_TxBxHxWxG: Array, mask_TxB: Array, kernel_h: Array, unroll: int = 1) -> Array:
  """h after the last real step of a ConvLSTM whose input half of the gates, gx_t = Conv(x_t) + b, is given.

  z_t = gx_t + Conv3x3(h_{t-1}; kernel_h); [i, f, o, g] = split(z_t); c = sig(f) c_{t-1} + sig(i) tanh(g);
  h = sig(o) tanh(c); (c, h) := where(m_t, new, old); zero initial state (spec §3.3, §4). A functional handle on
  :class:`ConvLSTMRecurrence` (which has no variables), for tests and benchmarks.
  """
  return ConvLSTMRecurrence(unroll).apply({}, gx_TxBxHxWxG, mask_TxB, kernel_h)


def _lstm_bias_init(fan_in: int, hidden: int, forget_bias: float):
  """PyTorch's default bias init, plus ``forget_bias`` on the forget-gate slice [hidden, 2 hidden) (0: the official
  init)."""
  base = torch_bias_init(fan_in)

  def init(key: Array, shape, dtype=jnp.float32) -> Array:
    return base(key, shape, dtype).at[hidden : 2 * hidden].add(forget_bias)

  return init


class MaskedConvLSTM(nn.Module):
  """One ConvLSTM layer (3x3, no peepholes) over B x T x H x W x C; returns h after each video's last real frame.

  Gates [i, f, o, g] = split(Conv3x3([x_t ; h_{t-1}]) + b) (input channels first, then hidden). The carry (c, h)
  is replaced only where m_{b,t} is true: (c, h) := where(m, new, old) (spec §3.3, §4).
  Parameters ``kernel`` (3, 3, C + hidden, 4 hidden) and ``bias`` (4 hidden): one tensor, as the official single
  convolution (this matters for the per-tensor L2 term of spec §5 and for ``torch_import``). By linearity the input
  channels' part of the convolution runs for all frames at once before the time loop; only the hidden channels'
  part runs inside it (:class:`ConvLSTMRecurrence`, a ``flax.linen.scan``), with the exact one-step gradient of
  :func:`conv_lstm_step`.
  """

  hidden: int = 8
  kernel_size: int = 3
  unroll: int = 1
  forget_bias: float = 0.0

  @nn.compact
  def __call__(self, x_BxTxHxWxC: Array, mask_BxT: Array) -> Array:
    c = x_BxTxHxWxC.shape[-1]
    k, hid = self.kernel_size, self.hidden
    fan_in = k * k * (c + hid)
    kernel = self.param("kernel", torch_kernel_init, (k, k, c + hid, 4 * hid), jnp.float32)
    bias = self.param("bias", _lstm_bias_init(fan_in, hid, self.forget_bias), (4 * hid,), jnp.float32)
    # Input half of the gate convolution for every frame at once (time-major for the scan).
    gx_TxBxHxWxG = conv_same(jnp.swapaxes(x_BxTxHxWxC, 0, 1), kernel[:, :, :c]) + bias
    return ConvLSTMRecurrence(self.unroll, name="recurrence")(
      gx_TxBxHxWxG, jnp.swapaxes(mask_BxT, 0, 1), kernel[:, :, c:]
    )


class NonLocalBlock(nn.Module):
  """Dot-product non-local block without softmax (spec §3.4); identity at init (W's BN gamma = beta = 0)."""

  inter_channels: int = 4
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  batch_axis_name: str | None = None

  @nn.compact
  def __call__(self, h_BxHxWxC: Array, video_mask_B: Array, *, train: bool) -> Array:
    b, hh, ww, c = h_BxHxWxC.shape
    ci = self.inter_channels
    theta = torch_conv(ci, 1, c, name="theta")(h_BxHxWxC).reshape(b, hh * ww, ci)
    phi = max_pool2(torch_conv(ci, 1, c, name="phi")(h_BxHxWxC)).reshape(b, -1, ci)
    g = max_pool2(torch_conv(ci, 1, c, name="g")(h_BxHxWxC)).reshape(b, -1, ci)
    f = jnp.einsum("bnc,bmc->bnm", theta, phi) / phi.shape[1]  # F = theta phi^T / N, N = 36 pooled positions
    y = jnp.einsum("bnm,bmc->bnc", f, g).reshape(b, hh, ww, ci)
    w_y = torch_conv(c, 1, ci, name="w")(y)
    w_y = MaskedBatchNorm(
      momentum=self.bn_momentum,
      epsilon=self.bn_epsilon,
      scale_init=nn.initializers.zeros,
      bias_init=nn.initializers.zeros,
      axis_name=self.batch_axis_name,
      name="bn",
    )(w_y, video_mask_B, use_running_average=not train)
    return h_BxHxWxC + w_y


class RealSmileNet(JitInitModule):
  """The ``org`` RealSmileNet (spec §3): ``__call__(frames_BxTxHxWxC, lengths_B, *, train)`` returns
  ``(logit_B, feats_Bx250)``.

  ``frames``: float32 in [0, 1], 48 x 48 x 3, padded at the end; ``lengths_B``: real frames per video (0 allowed).
  Collections: ``params``, ``batch_stats`` (mutable in training); rng stream ``dropout`` (training only).
  ``feats`` are the flattened final-branch activations (after dropout in training, H-W-C order), i.e. the input of
  the classifier and what late fusion concatenates (spec §7).

  ``conv_impl="cnhw"`` (default) holds the temporal attention's and the encoder's maps channels-first,
  C x B x T x H x W, with hand-written convolutions and gradients (``layers.conv_same_cf``) and materialised stages
  (``layers.fusion_barrier``), because XLA:CPU's own convolutions are slow for these 3-6 channels
  (benchmarks/README.md); ``"lax"`` uses ``lax.conv_general_dilated`` channels-last (for accelerators). Both share
  parameters, initialisation and results (the tests compare them). ``batch_axis_name``: see the field.
  """

  hidden: int = 8
  encoder_channels: tuple[int, int] = (4, 6)
  nonlocal_channels: int = 4
  final_channels: int = 10
  encoder_dropout: float = 0.2
  final_dropout: float = 0.5
  forget_bias: float = 0.0  # added to the ConvLSTM forget-gate bias at init (0: the official init)
  bn_momentum: float = 0.9  # Flax convention: keep 0.9 of the old value (PyTorch momentum 0.1)
  bn_epsilon: float = 1e-5
  scan_unroll: int = 1
  conv_impl: str = "cnhw"  # how TA and the encoder run: "cnhw" (fast on CPU) or "lax" (class docstring)
  # Set when the module runs inside jax.shard_map over a batch split on this mesh axis (smilejax.train's data-parallel
  # step): every BatchNorm then takes the statistics of the whole batch and each video draws its own dropout masks
  # (layers.RowDropout), as on one device.
  batch_axis_name: str | None = None

  @nn.compact
  def __call__(self, frames_BxTxHxWxC: Array, lengths_B: Array, *, train: bool) -> tuple[Array, Array]:
    x = jnp.asarray(frames_BxTxHxWxC, jnp.float32)
    if x.ndim != 5:
      raise ValueError(f"RealSmileNet: expected frames B x T x H x W x C, got shape {x.shape}")
    b, t = x.shape[:2]
    lengths_B = jnp.asarray(lengths_B, jnp.int32).reshape(b)
    mask_BxT = time_mask(lengths_B, t)
    video_mask_B = lengths_B > 0
    # Zero the padding: whatever it held (even NaN) then cannot leak into values or gradients.
    x = jnp.where(mask_BxT[:, :, None, None, None], x, 0.0)

    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")
    if self.conv_impl == "cnhw":  # TA and the encoder run channels-first (layers: "cnhw" representation)
      x = fusion_barrier(jnp.moveaxis(x, -1, 0))  # once: fused into each consumer, the 3-channel transpose is slow
    x = TemporalAttention(channels_first=self.conv_impl == "cnhw", name="ta")(x)
    # Global index of this batch's first video (a shard's offset in the data-parallel step): the dropout masks
    # of a video do not depend on how the batch is split.
    row_offset = 0 if self.batch_axis_name is None else jax.lax.axis_index(self.batch_axis_name) * b
    x = FrameEncoder(
      self.encoder_channels,
      self.encoder_dropout,
      self.bn_momentum,
      self.bn_epsilon,
      self.conv_impl,
      self.batch_axis_name,
      name="encoder",
    )(x, mask_BxT, train=train, row_offset=row_offset)
    h = MaskedConvLSTM(self.hidden, unroll=self.scan_unroll, forget_bias=self.forget_bias, name="convlstm")(x, mask_BxT)
    z = NonLocalBlock(self.nonlocal_channels, self.bn_momentum, self.bn_epsilon, self.batch_axis_name, name="nonlocal")(
      h, video_mask_B, train=train
    )

    # Final branch (spec §3.5).
    y = avg_pool2(z)
    y = torch_conv(self.final_channels, 2, z.shape[-1], padding="VALID", name="final_conv")(y)
    y = MaskedBatchNorm(
      momentum=self.bn_momentum, epsilon=self.bn_epsilon, axis_name=self.batch_axis_name, name="final_bn"
    )(y, video_mask_B, use_running_average=not train)
    y = RowDropout(self.final_dropout)(nn.relu(y), deterministic=not train, row_offset=row_offset)
    feats = y.reshape(b, -1)
    logit = torch_dense(1, feats.shape[-1], name="classifier")(feats)[:, 0]
    return logit, feats
