"""Evaluation-mode outputs of a trained model and their scores (realsmilenet.md §6).

Accuracy counts p > 0.5 (logit > 0) as spontaneous; the validation loss is the mean BCE (no regulariser).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from smilejax.train.examples import Examples, Standardizer, eval_batches, take_batch
from smilejax.train.steps import Steps


def predict(
  steps: Steps,
  variables: Any,
  ex: Examples,
  *,
  batch_size: int,
  bucket: int,
  standardizer: Standardizer | None = None,
  want_features: bool = False,
):
  """Evaluation-mode logits [N] (and final-branch features [N, F]) of every example, in ``ex`` order."""
  n = len(ex)
  logits = np.zeros(n, np.float32)
  feats = None
  for idx in eval_batches(ex, batch_size):
    x, lengths = take_batch(ex, idx, bucket=bucket)
    if standardizer is not None:
      x = standardizer.apply(x)
    logit, f = steps.eval_step(variables, x, lengths)
    logit, f = np.asarray(logit), (np.asarray(f) if want_features else None)
    # Fill copies were appended after the real rows; keep the first occurrence of each index.
    _, first = np.unique(idx, return_index=True)
    keep = np.zeros(len(idx), bool)
    keep[first] = True
    logits[idx[keep]] = logit[keep]
    if want_features:
      if feats is None:
        feats = np.zeros((n, f.shape[-1]), np.float32)
      feats[idx[keep]] = f[keep]
  return (logits, feats) if want_features else logits


def predict_batch(
  steps: Steps, variables: Any, standardizer: Standardizer | None, x: Any, lengths: Any
) -> tuple[np.ndarray, np.ndarray]:
  """(P(spontaneous)_B, feats_BxF) of one batch in evaluation mode; ``x`` raw (standardised here when a
  ``standardizer`` is given), frames uint8 or in [0, 1]."""
  if standardizer is not None:
    x = standardizer.apply(np.asarray(x))
  logit, feats = steps.eval_step(variables, x, jnp.asarray(lengths, jnp.int32))
  return sigmoid(np.asarray(logit)), np.asarray(feats)


def accuracy_and_loss(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  """Accuracy (logit > 0 means spontaneous) and mean BCE(z, y) = max(z, 0) - z y + log1p(exp(-|z|)), float64."""
  y = np.asarray(y, np.float64)
  z = np.asarray(logits, np.float64)
  bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
  return float(np.mean((z > 0) == (y > 0.5))), float(np.mean(bce))


def sigmoid(z: np.ndarray) -> np.ndarray:
  """1 / (1 + exp(-z)) in float64, in a form that overflows for neither sign of z."""
  z = np.asarray(z, np.float64)
  return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
