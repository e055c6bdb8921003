"""Latent AU series of one synthetic video (synthetic.md §1 time profile, §2 couplings).

The lip-corner envelope a(t) and the 17 latent AU drivers X_TxA (before rest baselines, gain and noise), and the
stationary AR(1) noise process the observation and render stages share.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import signal

from smilejax import constants as C
from smilejax.synthetic.latents import APEX_FLUCTUATION_TAU_S, STREAM_AUS, VideoLatents, video_rng

_AU = C.AU_INDEX  # AU number -> column


def ar1(rng: np.random.Generator, n: int, *, rho: float, sd: float, size: tuple[int, ...] = ()) -> np.ndarray:
  """Stationary AR(1): x_0 ~ N(0, sd^2), x_t = rho x_{t-1} + sqrt(1 - rho^2) sd z_t; shape size + (n,)."""
  z = rng.standard_normal(size + (n,))
  w = z * (sd * math.sqrt(1.0 - rho * rho))
  w[..., 0] = z[..., 0] * sd
  return signal.lfilter([1.0], [1.0, -rho], w, axis=-1)


def ar1_rho(tau_s: float, fps: float) -> float:
  """AR(1) coefficient of correlation time tau_s at fps: rho = exp(-1 / (tau_s fps))."""
  return math.exp(-1.0 / (tau_s * fps))


def envelope(t_T: np.ndarray, lat: VideoLatents) -> np.ndarray:
  """Lip-corner envelope a(t) in [0, 1] (spec §1): pre-roll 0, raised-cosine onset over D_on, plateau D_ap,
  raised-cosine offset over D_off, 0 after. a = (1 - cos(pi (t - t1)/D_on))/2 on the onset."""
  t1 = lat.pre_roll
  t2, t3 = t1 + lat.d_on, t1 + lat.d_on + lat.d_ap
  t4 = t3 + lat.d_off
  a = np.zeros_like(t_T, dtype=np.float64)
  on = (t_T >= t1) & (t_T < t2)
  a[on] = 0.5 * (1.0 - np.cos(np.pi * (t_T[on] - t1) / lat.d_on))
  a[(t_T >= t2) & (t_T < t3)] = 1.0
  off = (t_T >= t3) & (t_T < t4)
  a[off] = 0.5 * (1.0 + np.cos(np.pi * (t_T[off] - t3) / lat.d_off))
  return a


@dataclasses.dataclass(frozen=True)
class LatentSeries:
  """Latent (noise-free) series of one video (spec §2). X_TxA: the 17 AU drivers in constants order, before
  rest baselines, gain and noise; a_T: envelope; a_lag_T: a(t - lag6); s12_T = A a
  (1+e)."""

  t_T: np.ndarray
  X_TxA: np.ndarray
  a_T: np.ndarray
  a_lag_T: np.ndarray
  s12_T: np.ndarray
  blink_rate_per_min: float
  jaw_drop: bool


def _pulse(t_T: np.ndarray, start: float, duration: float) -> np.ndarray:
  """Raised-cosine pulse of height 1 on [start, start + duration]."""
  x = (t_T - start) / duration
  return np.where((x >= 0) & (x <= 1), 0.5 * (1.0 - np.cos(2 * np.pi * np.clip(x, 0, 1))), 0.0)


def latent_au_series(seed: int, lat: VideoLatents, *, fps: float = C.BASE_FPS) -> LatentSeries:
  """The 17 latent AU drivers of spec §2 for one video."""
  rng = video_rng(seed, lat.subject, lat.label, lat.k, STREAM_AUS)
  T = lat.n_frames(fps)
  t = np.arange(T) / fps
  a = envelope(t, lat)
  e = ar1(rng, T, rho=ar1_rho(APEX_FLUCTUATION_TAU_S, fps), sd=lat.irr)
  a_fl = a * np.maximum(0.0, 1.0 + e)
  # AU6 follows AU12 with delay lag6 (negative: leads); zero before the smile.
  a_fl_lag = np.interp(t - lat.lag6, t, a_fl, left=0.0, right=float(a_fl[-1]))
  a_lag = np.interp(t - lat.lag6, t, a, left=0.0, right=float(a[-1]))
  A = lat.amplitude
  s12 = A * a_fl
  s6 = lat.g6 * A * a_fl_lag
  X = np.zeros((T, C.NUM_AUS))
  X[:, _AU[12]] = s12
  X[:, _AU[6]] = s6 + 0.15 * s12 + 0.1 * lat.wr * a_lag
  X[:, _AU[7]] = 0.5 * s6
  X[:, _AU[10]] = 0.10 * s12 + (0.20 * s12 if lat.open_mouth else 0.0)
  X[:, _AU[14]] = 0.25 * s12
  X[:, _AU[20]] = 0.05 * s12
  X[:, _AU[4]] = 0.1 * s6
  X[:, _AU[5]] = -0.2 * s6
  X[:, _AU[9]] = 0.1 * s6
  jaw = bool(rng.random() < 0.5)
  X[:, _AU[25]] = 0.1 * s12 + (0.9 * A * a_fl**1.5 if lat.open_mouth else 0.0)
  if lat.open_mouth and jaw:
    X[:, _AU[26]] = 0.5 * A * a_fl**2
  # Brows: slow AR(1) activity (tau 1 s, SD 0.15, AU01/AU02 rho 0.8) and an occasional brow flash.
  brow = ar1(rng, T, rho=ar1_rho(1.0, fps), sd=0.15, size=(2,))
  X[:, _AU[1]] = brow[0]
  X[:, _AU[2]] = 0.8 * brow[0] + 0.6 * brow[1]
  flash_u = rng.random(3)
  if flash_u[0] < 0.1:
    flash = (0.5 + flash_u[1]) * _pulse(t, flash_u[2] * max(0.0, t[-1] - 0.4), 0.4)
    X[:, _AU[1]] += flash
    X[:, _AU[2]] += flash
  # "Smile controls" AU15/17/23: Bernoulli(0.15) per video, 0.3-0.8 for ~0.3 s near the offset.
  ctrl_u = rng.random(6)
  if ctrl_u[0] < 0.15:
    start = lat.pre_roll + lat.d_on + lat.d_ap + ctrl_u[1] * lat.d_off - 0.15
    dur = 0.25 + 0.15 * ctrl_u[2]
    for j, au in enumerate((15, 17, 23)):
      X[:, _AU[au]] += (0.3 + 0.5 * ctrl_u[3 + j]) * _pulse(t, start, dur)
  # AU45 blinks: Poisson, rate log-normal per video (median 15/min, sigma_ln 0.5); raised-cosine pulses of
  # 0.2-0.35 s, peak U(1.5, 3.0); plus eye narrowing 0.3 (AU06 + AU07 drivers).
  rate = float(15.0 * np.exp(0.5 * rng.standard_normal()))
  n_blinks = int(rng.poisson(rate * (T / fps) / 60.0))
  blink = np.zeros(T)
  for _ in range(n_blinks):
    start, dur, peak = rng.uniform(0.0, T / fps), rng.uniform(0.2, 0.35), rng.uniform(1.5, 3.0)
    blink = np.maximum(blink, peak * _pulse(t, start - dur / 2, dur))
  X[:, _AU[45]] = blink + 0.3 * (X[:, _AU[6]] + X[:, _AU[7]])
  return LatentSeries(
    t_T=t, X_TxA=X, a_T=a, a_lag_T=a_lag, s12_T=s12, blink_rate_per_min=rate, jaw_drop=bool(lat.open_mouth and jaw)
  )
