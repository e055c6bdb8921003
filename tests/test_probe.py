"""What the rendered pixels carry (../shared/spec/synthetic.md §6.7, §6.8): unit tests of smilejax.synthetic.probe on
constructed arrays, and the corpus-level acceptance checks (benchmark: they need the default run's corpus, 60 subjects,
the one `make run` generates into ~/.cache/smilejax/synthetic-default-n60-seed0; generated there if absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smilejax import synthetic as S
from smilejax.synthetic import probe

PROBE_CORPUS = Path("~/.cache/smilejax/synthetic-default-n60-seed0").expanduser()


def _face_like(H=48, W=48, seed=0):
  """A smooth grey image [H, W] with vertical structure (sum of Gaussian row bands) and some columns texture."""
  rng = np.random.default_rng(seed)
  y = np.arange(H)[:, None]
  img = np.full((H, W), 120.0)
  for c, a in zip(rng.uniform(4, H - 4, 8), rng.uniform(-60, 60, 8)):
    img += a * np.exp(-0.5 * ((y - c) / 1.8) ** 2)
  return img


def _shifted(img_HxW, dy):
  """img moved down by dy px (linear interpolation along rows)."""
  H = img_HxW.shape[0]
  rows = np.arange(H) - dy
  return np.stack([np.interp(rows, np.arange(H), img_HxW[:, c]) for c in range(img_HxW.shape[1])], 1)


def test_fit_logistic_separates_separable_data():
  rng = np.random.default_rng(0)
  X = rng.normal(0, 1, (200, 3))
  y = (X[:, 0] - 2 * X[:, 1] > 0).astype(float)
  f = probe.fit_logistic(X, y)
  assert np.mean((f(X) > 0) == (y == 1)) >= 0.98
  assert probe.quadratic_features(X).shape == (200, 3 + 6)


def test_vertical_shift_recovers_subpixel_shifts():
  img = _face_like()
  prof = img.mean(1)
  for dy in (-1.3, -0.6, 0.0, 0.35, 0.8):
    assert abs(probe.vertical_shift(prof, _shifted(img, dy).mean(1)) - dy) < 0.05, dy


def test_pixel_features_recover_the_shift_at_apex_and_the_darkening():
  img = _face_like(seed=1)
  frames = []
  for t in range(30):
    up = 1.0 if 10 <= t < 20 else 0.0  # apex frames 10..19: the face moves down 0.8 px, corners darken 10 %
    f = _shifted(img, 0.8 * up)
    f[17:22, 6:12] *= 1.0 - 0.10 * up  # the outer-eye-corner patches, outside the shift band
    f[17:22, 36:42] *= 1.0 - 0.10 * up
    frames.append(f)
  frames = np.repeat(np.stack(frames)[..., None], 3, axis=-1)
  x = dict(zip(probe.FEATURE_NAMES, probe.pixel_features(frames, fps_sampled=10.0)))
  assert abs(x["vertical_shift_px"] - 0.8) < 0.1, x
  assert x["corner_darkening"] > 0.03, x
  assert abs(x["smile_duration_half"] - 1.0) < 0.25, x


def test_difference_energy_timing_on_a_ramp():
  # The mouth region brightens linearly over frames 10..14 (4 steps of 5 grey levels), static elsewhere.
  frames = np.full((30, 48, 48, 3), 100.0)
  level = np.clip((np.arange(30) - 10) * 5.0, 0.0, 20.0)
  rows, cols = probe._window(probe.MOUTH_ROWS, probe.MOUTH_COLS, 48, 48)
  frames[:, rows, cols] += level[:, None, None, None]
  e_T = probe.region_difference_energy(frames, probe.MOUTH_ROWS, probe.MOUTH_COLS)
  np.testing.assert_allclose(e_T[10:14], 5.0)
  assert np.all(e_T[:10] == 0) and np.all(e_T[14:] == 0)
  x = dict(zip(probe.FEATURE_NAMES, probe.pixel_features(frames, fps_sampled=10.0)))
  assert x["mouth_peak"] == pytest.approx(5.0)
  assert x["mouth_time_to_peak"] == pytest.approx(0.0)
  assert x["mouth_duration_half"] == pytest.approx(0.4)
  assert x["eye_peak"] == 0.0
  assert x["vertical_shift_px"] == pytest.approx(0.0, abs=1e-6)


def test_cross_validated_accuracy_uses_the_fold_lists():
  rng = np.random.default_rng(0)
  ids = [f"{s:03d}_{kind}_smile_1" for s in range(1, 41) for kind in ("deliberate", "spontaneous")]
  y = np.array([0 if "deliberate" in v else 1 for v in ids])
  X = (y + rng.normal(0, 0.3, len(y)))[:, None]
  folds = {k: [v for v in ids if (int(v[:3]) - 1) % 4 == k - 1] for k in range(1, 5)}
  r = probe.cross_validated_accuracy(ids, X, y, folds)
  assert len(r["per_fold"]) == 4 and r["mean"] >= 0.9
  with pytest.raises(ValueError, match="no fold"):
    probe.cross_validated_accuracy(ids, X, y, {1: ids[:10]})


# ----------------------------------------------------------------------------------------------------------------
# Corpus-level acceptance checks (§6.7, §6.8): a default-size corpus of 60 subjects
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe_corpus():
  return S.ensure_corpus(PROBE_CORPUS, size="default", seed=0, n_subjects=60, n_workers=2, progress=False)


@pytest.mark.benchmark  # needs a default-size corpus (minutes to generate once; then ~1 min): `pytest -m benchmark`
def test_visible_smile_medians(probe_corpus):
  m = probe.visible_smile_medians(probe_corpus)
  assert 24.0 <= m["eye_distance_px"] <= 27.0, m
  assert 2.5 <= m["corner_travel_px"] <= 4.0, m
  assert m["onset_over_rest"] >= 3.0, m
  assert m["lip_gap_px"] >= 3.5, m


@pytest.mark.benchmark  # needs a default-size corpus (see above)
def test_pixel_probe_accuracy(probe_corpus):
  r = probe.pixel_probe_accuracy(probe_corpus)
  assert r["mean"] >= 0.72, r
