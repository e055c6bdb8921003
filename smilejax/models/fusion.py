"""Late-fusion head (spec ``realsmilenet.md`` §7; paper §2.2).

The contributing models are trained first and frozen; their final-branch features (evaluation mode) are
concatenated -- 250 + 150 + 150 + 150 = 700 for "fusion of all features", 450 for "fusion of AUDA features" -- and
only a new Dense(1) + sigmoid is trained on them.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from smilejax.models.layers import Array, JitInitModule, torch_dense


class FusionHead(JitInitModule):
  """A single Dense(1) (PyTorch-default init). ``__call__(x_BxF, lengths=None, *, train) -> (logit_B, x_BxF)``.

  ``lengths`` and ``train`` are accepted for the uniform model interface and have no effect (no dropout, no BN).
  """

  @nn.compact
  def __call__(self, x_BxF: Array, lengths: Array | None = None, *, train: bool) -> tuple[Array, Array]:
    del lengths, train
    x = jnp.asarray(x_BxF, jnp.float32)
    if x.ndim != 2:
      raise ValueError(f"FusionHead: expected features B x F, got shape {x.shape}")
    return torch_dense(1, x.shape[-1], name="classifier")(x)[:, 0], x
