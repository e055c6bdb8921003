"""Each of the four models learns a tiny separable problem through ``smilejax.train.fit`` with the tiny config's
model and training settings (configs/test.py: batch 16, Adam 1e-3, L2 0.001, selection on validation accuracy, data
parallel over the test session's 2 CPU devices): the training loss falls below half of its first epoch's and a
held-out test split of 16 examples is classified without error (chance: 2^-16).

The problems: RealSmileNet, 48 x 48 clips of 8 frames in which a dark bar rises fast (posed) or slowly
(spontaneous), the problem of test_train.py's benchmark-marked test on fewer and shorter clips; frame-wise,
sequences of 9-16 frames x 154 features whose first 32 are shifted by +-2; AU-wise and cross-AU, vectors of 476 and
4352 features whose first 64 are shifted by +-2. One compilation per model (one input shape).
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from smilejax import train

CONFIG = runpy.run_path(str(Path(__file__).resolve().parents[1] / "configs" / "test.py"))["get_config"]()
# Evaluation batches of 16, time bucket 16 and checkpoints only at new bests and the last epoch: none of them changes
# a result (the batch and bucket only pad; smilejax.train.options.RESULT_NEUTRAL_TRAIN_KEYS), all make it cheaper.
TRAIN_CFG = dict(CONFIG.train.to_dict(), eval_batch_size=16, bucket=16, checkpoint_interval_s=1e9)
EPOCHS = {"realsmilenet": 15, "framewise": 6, "auwise": 6, "crossau": 6}  # RealSmileNet: 30 steps of batch 16


def _labels(n: int) -> np.ndarray:
  return np.arange(n) % 2  # balanced: 1 spontaneous, 0 posed


def _clips(n: int, rng: np.random.Generator) -> list[np.ndarray]:
  y = _labels(n)
  clips = []
  for label in y:
    frames = rng.normal(0.6, 0.02, (8, 48, 48, 3)).astype(np.float32)
    speed = 3.0 if label == 0 else 1.0  # rows per frame: posed-like fast rise vs spontaneous-like slow rise
    for k in range(8):
      top = int(40 - min(k * speed, 24))
      frames[k, top : top + 3, 14:34] = 0.2
    clips.append(frames)
  return clips


def _sequences(n: int, rng: np.random.Generator) -> list[np.ndarray]:
  out = []
  for label in _labels(n):
    x = rng.normal(size=(int(rng.integers(9, 17)), 154)).astype(np.float32)
    x[:, :32] += 2.0 * (2 * label - 1)
    out.append(x)
  return out


def _vectors(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
  x = rng.normal(size=(n, d)).astype(np.float32)
  x[:, :64] += 2.0 * (2 * _labels(n)[:, None] - 1)
  return x


def _split(method: str, n: int, rng: np.random.Generator, tag: str) -> train.Examples:
  if method == "realsmilenet":
    x = _clips(n, rng)
  elif method == "framewise":
    x = _sequences(n, rng)
  else:
    x = _vectors(n, 476 if method == "auwise" else 4352, rng)
  return train.Examples(x, _labels(n), tuple(f"{tag}{i}" for i in range(n)))


@pytest.mark.parametrize("method", ["realsmilenet", "framewise", "auwise", "crossau"])
def test_model_learns_a_separable_problem(method, tmp_path):
  rng = np.random.default_rng(0)
  data = {
    "train": _split(method, 32, rng, "train"),
    "val": _split(method, 8, rng, "val"),
    "test": _split(method, 16, rng, "test"),
  }
  model_cfg = dict(CONFIG.models[method].to_dict(), epochs=EPOCHS[method])
  r = train.fit(method, model_cfg, TRAIN_CFG, data, tmp_path / method)
  losses = [h["train_loss"] for h in r.history]
  assert len(losses) == EPOCHS[method]
  assert losses[-1] < 0.5 * losses[0], f"{method}: training loss per epoch {losses}"
  assert r.test_acc == 1.0, f"{method}: test accuracy {r.test_acc}, P(spontaneous) {r.test_prob}, losses {losses}"
