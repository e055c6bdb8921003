"""One split's examples, their standardisation, and how they are cut into batches (realsmilenet.md §4, §7).

Training batches (DECISION): every batch holds B real examples. An epoch visits a seeded permutation in order; when n
is not a multiple of B the last batch is completed cyclically with the first B - (n mod B) examples of the same
permutation (seen twice in that epoch). Not a padded, masked partial batch as PyTorch's ``drop_last=False``: the
masked rows would have to be kept out of every BatchNorm's statistics, which the AU-wise / cross-AU ``VectorNet``
cannot do (it ignores lengths), and a partial batch of 1 video makes a BatchNorm over videos degenerate. Not dropping
the remainder: on small corpora that discards a large share of the data every epoch. Shapes stay static: B is fixed
and the time axis is padded at the end to a multiple of ``bucket``, the true lengths passed to the model, so each
(model, bucket length) compiles once.

Evaluation batches have no coupling between examples (BatchNorm uses running statistics): they are sorted by length
(less padding) and a short last batch is filled with copies of a real example whose outputs are dropped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from smilejax.errors import InputError
from smilejax.fileio import atomic_write
from smilejax.sequences import pad_to_bucket


@dataclasses.dataclass
class Examples:
  """One split's inputs: ``x`` is a list of per-video arrays [T_i, ...] (sequence models) or one array [N, D];
  ``y`` int labels [N] (0 posed, 1 spontaneous); ``ids`` the video ids, same order."""

  x: list[np.ndarray] | np.ndarray
  y: np.ndarray
  ids: tuple[str, ...] = ()

  def __post_init__(self):
    self.y = np.asarray(self.y, np.int32).reshape(-1)
    if not self.ids:
      self.ids = tuple(str(i) for i in range(len(self.y)))
    self.ids = tuple(self.ids)
    if len(self.x) != len(self.y) or len(self.ids) != len(self.y):
      raise ValueError(f"Examples: {len(self.x)} inputs, {len(self.y)} labels, {len(self.ids)} ids")

  @property
  def sequential(self) -> bool:
    return isinstance(self.x, (list, tuple))

  def __len__(self) -> int:
    return len(self.y)

  def lengths(self) -> np.ndarray:
    if self.sequential:
      return np.array([len(a) for a in self.x], np.int32)
    return np.ones(len(self), np.int32)


def as_examples(split: Any) -> Examples | None:
  """``Examples`` from an Examples, a mapping with keys x, y (and ids), or None."""
  if split is None or isinstance(split, Examples):
    return split
  if isinstance(split, Mapping):
    return Examples(split["x"], split["y"], tuple(split.get("ids", ())))
  raise TypeError(f"expected Examples or a mapping with x and y, got {type(split).__name__}")


@dataclasses.dataclass(frozen=True)
class Standardizer:
  """x' = (x - mean) / std per feature (last axis), statistics of the training split only (realsmilenet.md §7)."""

  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def fit(cls, x: list[np.ndarray] | np.ndarray) -> "Standardizer":
    """Mean and (population) std of every feature over all training rows (all real frames for sequences).

    A feature that is constant on the training split (max == min, tested exactly) gets std 1.
    """
    rows = (
      np.concatenate([np.asarray(a, np.float64) for a in x], axis=0)
      if isinstance(x, (list, tuple))
      else np.asarray(x, np.float64)
    )
    rows = rows.reshape(-1, rows.shape[-1])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(rows.max(axis=0) == rows.min(axis=0), 1.0, std)
    return cls(mean, std)

  def apply(self, x: list[np.ndarray] | np.ndarray) -> list[np.ndarray] | np.ndarray:
    if isinstance(x, (list, tuple)):
      return [self.apply(a) for a in x]
    return ((np.asarray(x, np.float64) - self.mean) / self.std).astype(np.float32)

  def save(self, path: Path) -> None:
    atomic_write(path, lambda f: np.savez(f, mean=self.mean, std=self.std), binary=True)

  @classmethod
  def load(cls, path: Path) -> "Standardizer":
    try:
      with np.load(path) as z:
        return cls(np.asarray(z["mean"]), np.asarray(z["std"]))
    except (OSError, KeyError, ValueError) as e:
      raise InputError(f"{path}: cannot read the standardizer ({type(e).__name__}: {e})") from e


def take_batch(ex: Examples, idx: np.ndarray, *, bucket: int) -> tuple[np.ndarray, np.ndarray]:
  """Inputs and int32 lengths of the examples ``idx``: sequences padded at the end to a multiple of ``bucket``."""
  if ex.sequential:
    x, lengths = pad_to_bucket([ex.x[i] for i in idx], bucket=bucket)
    return np.asarray(x), np.asarray(lengths, np.int32)
  return np.asarray(ex.x[idx]), np.ones(len(idx), np.int32)


def epoch_order(n: int, *, batch_size: int, seed: int, epoch: int) -> np.ndarray:
  """Example indices of epoch ``epoch`` (0-based) as [n_batches, batch_size]: the permutation
  ``default_rng([seed, epoch])``, the last batch completed cyclically from its start (module docstring). It depends
  on nothing else, so a resumed run shuffles as the uninterrupted one."""
  perm = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
  n_batches = max(1, math.ceil(n / batch_size))
  return np.resize(perm, n_batches * batch_size).reshape(n_batches, batch_size)


def eval_batches(ex: Examples, batch_size: int) -> list[np.ndarray]:
  """Index batches for evaluation: sorted by length (stable), the last one filled with copies of its first index
  (their outputs are dropped)."""
  order = np.argsort(ex.lengths(), kind="stable")
  out = []
  for start in range(0, len(order), batch_size):
    idx = order[start : start + batch_size]
    out.append(np.concatenate([idx, np.full(batch_size - len(idx), idx[0])]) if len(idx) < batch_size else idx)
  return out
