"""OpenFace-like observation of a synthetic video and its smile intensity (synthetic.md §3).

What OpenFace would print for the latent AU series (gain, noise, drift, per-model offsets, clip, failed frames,
3-frame average, 2 decimals), and the SI series of the AUDA replication data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from smilejax import constants as C
from smilejax.synthetic.latents import (
  STATIC_AUS,
  STREAM_OBS,
  STREAM_SI,
  Subject,
  SyntheticConfig,
  VideoLatents,
  video_rng,
)
from smilejax.synthetic.series import LatentSeries, ar1, ar1_rho

# Deviation from §3 (generator 1.1.0; with latents.STATIC_BASELINE_MEAN): the spec's check "inactive AUs >= 50 %
# exact zeros at rest" cannot be met with its own q = 0.3, while real OpenFace output reads these AUs as exact zero
# in most frames (measured: benchmarks/README.md, "Synthetic corpus"). OpenFace keeps one cutoff per dynamic model,
# so the offset quantile is per AU: `quiet_offset_quantile` (0.8) for the dynamic AUs quiet through a whole clip,
# the spec's `dynamic_offset_quantile` (0.3) for the others (AU01/02 keep their resting brow activity; AU25/26/45
# their open-mouth and blink signals, which a high quantile over a clip that is mostly smile would remove).
QUIET_DYNAMIC_AUS = (5, 9, 15, 17, 20)
# Spec section 3: observation noise SD per AU (others 0.15).
NOISE_SD = {6: 0.10, 12: 0.10, 25: 0.20, 26: 0.20, 45: 0.25}
NOISE_SD_OTHER = 0.15
DRIFT_TAU_S, DRIFT_SD = 1.5, 0.06

_AU = C.AU_INDEX  # AU number -> column


@dataclasses.dataclass(frozen=True)
class Observation:
  """What OpenFace would print for one video (spec §3): au_TxA rounded to 2 decimals (constants order),
  success_T, confidence_T (2 decimals), presence_TxC (18 AU_c columns, constants.AU_PRESENCE_COLUMNS order)."""

  au_TxA: np.ndarray
  success_T: np.ndarray
  confidence_T: np.ndarray
  presence_TxC: np.ndarray


def _failed_frames(rng: np.random.Generator, T: int, config: SyntheticConfig) -> np.ndarray:
  """Spec §3 step 7: 10 % of videos get 1 + Poisson(0.5) gaps of U{1..6} frames, <= 5 % of the frames, kept at
  least one good frame apart (two touching gaps would make one run longer than the reader's 10-frame limit);
  `bad_input_rate` adds one 15-frame gap (beyond that limit)."""
  failed = np.zeros(T, bool)
  u = rng.random(3)
  n_gaps = 1 + int(rng.poisson(0.5))
  lengths = rng.integers(1, 7, size=n_gaps)
  starts = rng.random((n_gaps, 8))  # candidate places per gap; the first one clear of other gaps is used
  bad_start = rng.random()
  if u[0] < config.failed_video_rate:
    budget = int(0.05 * T)
    for length, cands in zip(lengths, starts):
      length = int(min(length, budget - failed.sum()))
      if length <= 0:
        break
      for c in cands:
        i0 = int(c * (T - length))
        if not failed[max(0, i0 - 1) : i0 + length + 1].any():
          failed[i0 : i0 + length] = True
          break
  if u[1] < config.bad_input_rate and T > 20:
    i0 = int(bad_start * (T - 15))
    failed[i0 : i0 + 15] = True
  return failed


def observe_openface(
  seed: int, lat: VideoLatents, subject: Subject, series: LatentSeries, *, config: SyntheticConfig
) -> Observation:
  """Spec §3 steps 1-8: raw = gain X + eps + drift; static AUs + subject baseline, dynamic AUs - q-quantile of
  their successful raw values (q per AU: QUIET_DYNAMIC_AUS); clip [0, 5]; failed frames 0; centred 3-frame mean
  over interior frames; 2 decimals."""
  rng = video_rng(seed, lat.subject, lat.label, lat.k, STREAM_OBS)
  fps = config.fps
  X = series.X_TxA
  T = X.shape[0]
  sigma_A = np.array([NOISE_SD.get(n, NOISE_SD_OTHER) for n in C.AU_NUMBERS])
  eps = rng.standard_normal((T, C.NUM_AUS)) * sigma_A * (1.0 + 0.05 * np.abs(X))
  drift = ar1(rng, T, rho=ar1_rho(DRIFT_TAU_S, fps), sd=DRIFT_SD, size=(C.NUM_AUS,)).T
  failed = _failed_frames(rng, T, config)
  success = ~failed
  raw = subject.gain_A * X + eps + drift
  for n in C.AU_NUMBERS:
    j = _AU[n]
    if n in STATIC_AUS:
      raw[:, j] += subject.static_baseline[n]
    else:
      q = config.quiet_offset_quantile if n in QUIET_DYNAMIC_AUS else config.dynamic_offset_quantile
      raw[:, j] -= np.quantile(raw[success, j], q)
  if config.clip_output:
    raw = np.clip(raw, 0.0, 5.0)
  raw[failed] = 0.0
  out = raw.copy()
  if T >= 3:
    out[1:-1] = (raw[:-2] + raw[1:-1] + raw[2:]) / 3.0
  au = np.round(out, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
  conf = np.where(success, np.minimum(0.98, rng.normal(0.97, 0.01, T)), rng.uniform(0.1, 0.6, T))
  conf = np.round(conf, 2)
  # AU_c presence: printed AU_r >= 1, flipped w.p. 0.05; AU28_c Bernoulli(0.02); 0 on failed frames.
  flips = rng.random((T, len(C.AU_PRESENCE_COLUMNS))) < 0.05
  au28 = rng.random(T) < 0.02
  presence = np.zeros((T, len(C.AU_PRESENCE_COLUMNS)))
  for ci, col in enumerate(C.AU_PRESENCE_COLUMNS):
    n = int(col[2:4])
    if n == 28:
      presence[:, ci] = au28
    else:
      presence[:, ci] = (au[:, _AU[n]] >= 1.0) ^ flips[:, ci]
  presence[failed] = 0.0
  return Observation(au_TxA=au, success_T=success, confidence_T=conf, presence_TxC=presence)


def smile_intensity(seed: int, lat: VideoLatents, series: LatentSeries, success_T: np.ndarray) -> np.ndarray:
  """Spec §3 SI: beta0 + beta1 tanh(s12 / 2.5) + n(t), beta0 ~ N(-0.010, 0.005^2), beta1 ~ N(0.042, 0.008^2),
  n AR(1) rho 0.6 SD 0.0012; sample-and-hold (repeat the previous value w.p. 0.25 and on failed frames);
  6 decimals."""
  rng = video_rng(seed, lat.subject, lat.label, lat.k, STREAM_SI)
  T = len(series.s12_T)
  beta0 = rng.normal(-0.010, 0.005)
  beta1 = rng.normal(0.042, 0.008)
  noise = ar1(rng, T, rho=0.6, sd=0.0012)
  si = beta0 + beta1 * np.tanh(series.s12_T / 2.5) + noise
  hold = (rng.random(T) < 0.25) | ~success_T
  hold[0] = False
  idx = np.where(hold, 0, np.arange(T))
  si = si[np.maximum.accumulate(idx)]
  return np.round(si, 6) + 0.0
