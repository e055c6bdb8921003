"""Classifiers of AUDA features on the RealSmileNet scheme (spec ``realsmilenet.md`` §7; paper §2.2, Figs. 2-3).

- :class:`FrameWiseNet`: the 154 frame-wise features of each sampled frame enter an LSTM (hidden 150) in place of
  RealSmileNet's per-frame deep features; its state after the last real frame enters the final branch.
- :class:`VectorNet`: the phase-wise features (AU-wise 476, cross-AU 4352; two separate models) enter the final
  branch directly.

Final branch ("dense final branch", proposed default of spec §7): Dense(150) -> BN -> ReLU -> Dropout(0.5); its 150
outputs are the model's final-branch features; then Dense(1) gives a logit. The frame-wise model also offers [T]'s
alternative ``final_branch="bn_relu"``: BN -> ReLU -> Dropout directly on the LSTM state.
Initialisation follows PyTorch defaults (Dense: U(+-1/sqrt(fan_in)); LSTM: U(+-1/sqrt(hidden)) for every tensor,
forget-gate bias not offset). Input standardisation is the caller's job (statistics of the training split only).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from smilejax.models.layers import (
  Array,
  JitInitModule,
  MaskedBatchNorm,
  lstm_gates,
  time_mask,
  torch_dense,
  torch_uniform_init,
)

FINAL_BRANCHES = ("dense", "bn_relu")


class DenseFinalBranch(nn.Module):
  """Dense(features) -> BN -> ReLU -> Dropout (``dense``), or BN -> ReLU -> Dropout (``bn_relu``).

  ``row_mask_B`` (bool, optional) keeps rows out of the BatchNorm statistics (batch-filling dummies).
  """

  features: int = 150
  dropout: float = 0.5
  kind: str = "dense"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x_BxD: Array, row_mask_B: Array | None = None, *, train: bool) -> Array:
    if self.kind not in FINAL_BRANCHES:
      raise ValueError(f"final branch must be one of {FINAL_BRANCHES}, got {self.kind!r}")
    if self.kind == "dense":
      x_BxD = torch_dense(self.features, x_BxD.shape[-1], name="dense")(x_BxD)
    x_BxD = MaskedBatchNorm(momentum=self.bn_momentum, epsilon=self.bn_epsilon, name="bn")(
      x_BxD, row_mask_B, use_running_average=not train
    )
    return nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x_BxD))


class LSTMCell(nn.Module):
  """One masked LSTM step (the body scanned by :class:`MaskedLSTM`); no parameters of its own.

  ``carry`` = (c, h), each B x H; ``gx_BxG`` = x_t W_x + b at this step (B x 4H); ``m_B`` = which rows have a real
  step here; ``kernel_h`` (H, 4H) is broadcast over steps. (c, h) := where(m, new, old) (spec §4).
  """

  @nn.compact
  def __call__(
    self, carry: tuple[Array, Array], gx_BxG: Array, m_B: Array, kernel_h: Array
  ) -> tuple[tuple[Array, Array], None]:
    c_prev, h_prev = carry
    c_new, h_new = lstm_gates(gx_BxG + h_prev @ kernel_h, c_prev)[4::2]
    m = m_B[:, None]
    return (jnp.where(m, c_new, c_prev), jnp.where(m, h_new, h_prev)), None


class MaskedLSTM(nn.Module):
  """A single-layer LSTM over B x T x D that returns the state h after each video's last real step.

  z = x_t W_x + h_{t-1} W_h + b, [i, f, o, g] = split(z); c_t = sig(f) c_{t-1} + sig(i) tanh(g);
  h_t = sig(o) tanh(c_t); the carry (c, h) is replaced only where m_{b,t} (spec §4), starting from zeros.
  Parameters: ``kernel_x`` (D, 4H), ``kernel_h`` (H, 4H), ``bias`` (4H), declared here. x W_x + b is computed for
  all steps before the time loop, a ``flax.linen.scan`` of :class:`LSTMCell` over time with ``kernel_h`` broadcast
  (the cell has no variables, so the parameter paths stay ``lstm/kernel_x`` etc.); the loop does only the
  recurrent product. Its gradient is JAX's own (matrix products transpose cheaply, unlike the ConvLSTM's conv).
  """

  hidden: int = 150
  unroll: int = 1

  @nn.compact
  def __call__(self, x_BxTxD: Array, mask_BxT: Array) -> Array:
    b, _, d = x_BxTxD.shape
    hid = self.hidden
    init = torch_uniform_init(1.0 / float(np.sqrt(hid)))
    kernel_x = self.param("kernel_x", init, (d, 4 * hid), jnp.float32)
    kernel_h = self.param("kernel_h", init, (hid, 4 * hid), jnp.float32)
    bias = self.param("bias", init, (4 * hid,), jnp.float32)

    gx_TxBxG = jnp.einsum("btd,dg->tbg", x_BxTxD, kernel_x) + bias
    mask_TxB = jnp.swapaxes(mask_BxT, 0, 1)
    zeros = jnp.zeros((b, hid), jnp.float32)
    scan = nn.scan(
      LSTMCell,
      variable_broadcast="params",
      split_rngs={"params": False},
      in_axes=(0, 0, nn.broadcast),
      out_axes=0,
      unroll=self.unroll,
    )
    (_, h_last), _ = scan(name="cell")((zeros, zeros), gx_TxBxG, mask_TxB, kernel_h)
    return h_last


class FrameWiseNet(JitInitModule):
  """AUDA frame-wise model. ``__call__(feats_BxTxD, lengths_B, *, train) -> (logit_B, feats_BxF)``.

  ``feats_BxTxD``: per-sampled-frame features (D = 154), padded at the end; ``lengths_B``: real steps per video
  (0 allowed: such a row is a dummy and stays out of the BatchNorm statistics). F = ``branch_features`` (150) for
  the ``dense`` final branch, ``hidden`` for ``bn_relu``.
  """

  hidden: int = 150
  branch_features: int = 150
  dropout: float = 0.5
  final_branch: str = "dense"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  scan_unroll: int = 1

  @nn.compact
  def __call__(self, feats_BxTxD: Array, lengths_B: Array, *, train: bool) -> tuple[Array, Array]:
    x = jnp.asarray(feats_BxTxD, jnp.float32)
    if x.ndim != 3:
      raise ValueError(f"FrameWiseNet: expected features B x T x D, got shape {x.shape}")
    b, t, _ = x.shape
    lengths_B = jnp.asarray(lengths_B, jnp.int32).reshape(b)
    mask_BxT = time_mask(lengths_B, t)
    x = jnp.where(mask_BxT[:, :, None], x, 0.0)  # padding (even NaN) cannot leak into values or gradients
    h = MaskedLSTM(self.hidden, unroll=self.scan_unroll, name="lstm")(x, mask_BxT)
    feats = DenseFinalBranch(
      self.branch_features, self.dropout, self.final_branch, self.bn_momentum, self.bn_epsilon, name="final_branch"
    )(h, lengths_B > 0, train=train)
    logit = torch_dense(1, feats.shape[-1], name="classifier")(feats)[:, 0]
    return logit, feats


class VectorNet(JitInitModule):
  """AUDA AU-wise (D = 476) or cross-AU (D = 4352) model: final branch -> Dense(1) (paper Fig. 3).

  ``__call__(x_BxD, lengths=None, *, train) -> (logit_B, feats_Bx150)``; ``lengths`` is accepted for a uniform
  interface and ignored.
  """

  branch_features: int = 150
  dropout: float = 0.5
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x_BxD: Array, lengths: Array | None = None, *, train: bool) -> tuple[Array, Array]:
    del lengths
    x = jnp.asarray(x_BxD, jnp.float32)
    if x.ndim != 2:
      raise ValueError(f"VectorNet: expected features B x D, got shape {x.shape}")
    feats = DenseFinalBranch(
      self.branch_features, self.dropout, "dense", self.bn_momentum, self.bn_epsilon, name="final_branch"
    )(x, train=train)
    logit = torch_dense(1, feats.shape[-1], name="classifier")(feats)[:, 0]
    return logit, feats
