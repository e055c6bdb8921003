"""Tests for smilejax/auda/ against the reference vectors (auda.md section 4) and an independent NumPy reference.

Compilation is the expensive part, so every jitted computation runs once per module on fixed shapes: one padded
batch of 1-D series [16, 256] (the two reference series, random and adversarial ones) for the dynamics and the phases,
and one padded batch of synthetic videos [5, 192] for the features.
"""

from __future__ import annotations

import auda_reference_numpy as ref
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import SHARED, shared_path

from smilejax import auda
from smilejax.auda import batching, layout, segments
from smilejax.constants import AU_INDEX
from smilejax.errors import InputError

REF_DIR = SHARED / "data" / "auda_reference"
REF_NAMES = ("001_deliberate_smile_2_smile_intensities", "smile_time_series")
COLUMNS = ("delta", "r", "delta_adj", "delta2", "r2", "delta2_adj")
T_SERIES = 256


# ---------------------------------------------------------------------------------------------------------------
# A batch of 1-D series: reference, random and adversarial
# ---------------------------------------------------------------------------------------------------------------


def _bump(t, centre, width, height):
  return height * np.exp(-0.5 * ((t - centre) / width) ** 2)


def _series_batch():
  """(series list, names) -- the two reference SI series first (if present), then synthetic ones."""
  rng = np.random.default_rng(7)
  out = []
  if REF_DIR.is_dir():
    for name in REF_NAMES:
      out.append((name, np.loadtxt(REF_DIR / f"{name}.txt")))
  t = np.arange(230)
  out.append(("random_walk", np.cumsum(rng.normal(size=230)) * 1e-3))
  out.append(("one_smile", -0.012 + _bump(t, 110, 25, 0.021) + rng.normal(size=230) * 2e-4))
  out.append(("two_smiles", -0.01 + _bump(t, 60, 14, 0.018) + _bump(t, 170, 16, 0.024) + rng.normal(size=230) * 2e-4))
  out.append(("no_smile", np.linspace(0.01, -0.01, 180) + rng.normal(size=180) * 1e-5))
  const = rng.normal(size=200) * 0.01
  const[40:90] = 0.0123456789  # constant stretch longer than both windows: r := 1, delta := 0 inside
  const[150:] = -0.00321
  out.append(("constant_stretches", const))
  spikes = np.zeros(190) + rng.normal(size=190) * 1e-6
  spikes[[20, 77, 78, 140]] += rng.uniform(0.5, 1.5, 4)
  out.append(("spikes", spikes))
  out.append(("ramp", 5.0 + 2.0 * np.arange(120)))  # exact in floating point: slope exactly 2
  out.append(("shorter_than_window", rng.normal(size=7)))
  out.append(("length_1", np.array([0.4321])))
  out.append(("all_constant", np.full(40, 2.5)))
  out.append(("full_length", np.sin(np.arange(T_SERIES) / 9.0) * 0.01 + rng.normal(size=T_SERIES) * 1e-3))
  out.append(("noise", rng.normal(size=150)))
  out.append(("short_smile", -0.01 + _bump(np.arange(60), 30, 6, 0.02)))
  # coarsely quantised: many mathematically tied slopes, broken by position (first on ties) as in the reference
  out.append(("quantised", np.round(np.cumsum(rng.normal(size=250)) * 0.01, 2)))
  names = [n for n, _ in out]
  return [s for _, s in out], names


SERIES, NAMES = _series_batch()
N_SERIES = len(SERIES)
LENGTHS = np.array([len(s) for s in SERIES], np.int32)
X64 = np.full((N_SERIES, T_SERIES), np.nan)  # padding must never leak into a result
for _i, _s in enumerate(SERIES):
  X64[_i, : len(_s)] = _s
X64_PADDED = np.where(np.isnan(X64), 123.0, X64)  # large finite garbage beyond each length


@jax.jit
def _dynamics_both(x, lengths):
  return {w: auda.dynamics(x, window=w, length=lengths) for w in (9, 27)}


def _to_numpy(dyn):
  return {w: {c: np.asarray(getattr(d, c)) for c in COLUMNS} for w, d in dyn.items()}


@pytest.fixture(scope="module")
def dyn64():
  with jax.enable_x64(True):
    return _to_numpy(_dynamics_both(X64_PADDED, LENGTHS))


@pytest.fixture(scope="module")
def dyn32():
  assert not jax.config.jax_enable_x64
  return _to_numpy(_dynamics_both(X64_PADDED.astype(np.float32), LENGTHS))


@pytest.fixture(scope="module")
def phases():
  return {w: np.asarray(auda.detect_phases_batch(X64_PADDED, LENGTHS, window=w)) for w in (27, 9)}


@pytest.fixture(scope="module")
def ref_dyn():
  return {w: [dict(zip(COLUMNS, ref.ref_dynamics(s, w))) for s in SERIES] for w in (9, 27)}


def _ref_file(name, window):
  """A reference vector file (skip without ../shared, fail under CI; the batch holds the reference series then)."""
  return np.loadtxt(shared_path("data", "auda_reference", f"{name}.w{window}.txt"))


# ---------------------------------------------------------------------------------------------------------------
# Reference vectors (auda.md section 4)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [9, 27])
@pytest.mark.parametrize("k", [0, 1])
def test_reference_dynamics_float64_1e9(dyn64, window, k):
  data = _ref_file(REF_NAMES[k], window)
  n = len(data)
  assert NAMES[k] == REF_NAMES[k] and LENGTHS[k] == n
  np.testing.assert_array_equal(X64[k, :n], data[:, 0])
  for c, column in enumerate(COLUMNS):
    got, want = dyn64[window][column][k, :n], data[:, 1 + c]
    assert np.all(want != 0)  # a relative bar needs non-zero references (smallest |value|: 6.6e-11)
    rel = np.abs(got - want) / np.abs(want)
    assert rel.max() <= 1e-9, (column, rel.max(), int(rel.argmax()))


@pytest.mark.parametrize("window", [9, 27])
@pytest.mark.parametrize("k", [0, 1])
def test_reference_phases_exact(phases, window, k):
  data = _ref_file(REF_NAMES[k], window)
  np.testing.assert_array_equal(phases[window][k, : len(data)], data[:, 7].astype(np.int32))
  assert not phases[window][k, len(data) :].any()


def test_reference_phase_runs_as_in_spec(phases):
  _ref_file(REF_NAMES[0], 27)

  def runs(labels):
    out, start = [], 0
    for t in range(1, len(labels) + 1):
      if t == len(labels) or labels[t] != labels[start]:
        out.append((int(labels[start]), start, t - 1))
        start = t
    return out

  assert runs(phases[27][0, :104]) == [(1, 0, 25), (2, 26, 72), (3, 73, 99), (0, 100, 103)]
  assert runs(phases[9][0, :104]) == [(1, 0, 19), (2, 20, 80), (3, 81, 91), (0, 92, 103)]
  assert runs(phases[27][1, :206]) == [(1, 0, 21), (2, 22, 100), (3, 101, 205)]
  assert runs(phases[9][1, :206]) == [(0, 0, 2), (1, 3, 10), (2, 11, 66), (3, 67, 126), (0, 127, 205)]


def test_reference_spot_values(dyn64):
  _ref_file(REF_NAMES[0], 27)
  table = [  # auda.md section 4: (window, t, delta, r, delta_adj, delta2, delta2_adj)
    (27, 0, 1.875006e-04, 0.81052, 1.519732e-04, 5.994491e-05, 5.165652e-05),
    (27, 13, 1.712150e-03, 0.92445, 1.582789e-03, 3.874096e-05, 2.258519e-05),
    (27, 85, -1.363668e-03, -0.92084, -1.255726e-03, 3.493247e-05, 1.667754e-05),
    (27, 103, 1.632540e-05, 0.32733, 5.343740e-06, 8.597200e-06, 2.814094e-06),
    (9, 13, 1.962350e-03, 0.84121, 1.650740e-03, 5.426700e-04, 5.266967e-04),
    (9, 85, -3.400700e-03, -0.96790, -3.291532e-03, 1.445447e-04, 6.751516e-05),
  ]
  for w, t, d, r, da, d2, d2a in table:
    got = dyn64[w]
    np.testing.assert_allclose(
      [got["delta"][0, t], got["r"][0, t], got["delta_adj"][0, t], got["delta2"][0, t], got["delta2_adj"][0, t]],
      [d, r, da, d2, d2a],
      rtol=2e-5,
    )


@pytest.mark.parametrize("window", [9, 27])
def test_reference_float32(dyn32, window):
  """Default float32: slopes within 1e-5 x the column's largest magnitude (auda.md section 2)."""
  for k, name in enumerate(REF_NAMES):
    data = _ref_file(name, window)
    n = len(data)
    for c, column in enumerate(COLUMNS):
      want = data[:, 1 + c]
      err = np.abs(dyn32[window][column][k, :n] - want).max()
      assert err <= 1e-5 * np.abs(want).max(), (name, column, err)


def test_phases_float64_inside_default_float32_program(phases):
  """The ``phases`` fixture ran in this default float32 program: detect_phases_batch computed them in float64
  (exact, see test_reference_phases_exact) and left the global x64 flag off."""
  assert not jax.config.jax_enable_x64
  assert all(p.dtype == np.int32 for p in phases.values())


def test_detect_phases_traced_under_jit_and_vmap(phases):
  """Traced input runs in its own dtype (float64 here, the caller enabled x64): jit and vmap give the same labels."""
  with jax.enable_x64(True):
    x = jnp.asarray(X64_PADDED[:4])
    n = jnp.asarray(LENGTHS[:4])
    got = jax.jit(jax.vmap(lambda s, m: auda.detect_phases(s, window=27, length=m)))(x, n)
  np.testing.assert_array_equal(np.asarray(got), phases[27][:4])


# ---------------------------------------------------------------------------------------------------------------
# Random and adversarial series against the NumPy reference
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [9, 27])
def test_dynamics_match_numpy_reference_float64(dyn64, ref_dyn, window):
  for k, name in enumerate(NAMES):
    n = LENGTHS[k]
    for column in COLUMNS:
      got, want = dyn64[window][column][k], ref_dyn[window][k][column]
      scale = max(np.abs(want).max(), 1e-300)
      np.testing.assert_allclose(got[:n], want, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{name} {column}")
      assert np.all(got[n:] == 0), f"{name} {column}: padded frames must be 0"


@pytest.mark.parametrize("window", [9, 27])
def test_dynamics_match_numpy_reference_float32(dyn32, ref_dyn, window):
  """Slopes (the features) within 1e-5 x the column's largest magnitude (auda.md section 2). The correlations r, r2
  are not features; on nearly linear windows they are ill-conditioned, so they get a looser bound."""
  for k, name in enumerate(NAMES):
    n = LENGTHS[k]
    for column in COLUMNS:
      want = ref_dyn[window][k][column]
      err = np.abs(dyn32[window][column][k, :n] - want).max()
      bound = 1e-3 if column in ("r", "r2") else 1e-5 * max(np.abs(want).max(), 1e-30)
      assert err <= bound, (name, column, err)


def test_no_nan_or_inf_anywhere(dyn64, dyn32):
  for dyn in (dyn64, dyn32):
    for w in dyn:
      for column in COLUMNS:
        assert np.all(np.isfinite(dyn[w][column])), (w, column)


def test_constant_windows_r_is_one(dyn64):
  k = NAMES.index("constant_stretches")
  for w in (9, 27):
    h = w // 2
    inside = np.arange(40 + h, 90 - h)  # windows entirely inside the constant stretch
    assert np.all(dyn64[w]["r"][k, inside] == 1.0)
    assert np.all(dyn64[w]["delta"][k, inside] == 0.0)
  k = NAMES.index("all_constant")
  for w in (9, 27):
    assert np.all(dyn64[w]["r"][k, :40] == 1.0) and np.all(dyn64[w]["delta"][k, :40] == 0.0)
    assert np.all(dyn64[w]["r2"][k, :40] == 1.0) and np.all(dyn64[w]["delta2"][k, :40] == 0.0)


def test_linear_ramp_property(dyn64):
  """auda.md section 4: on a ramp, frames h <= t < N - 2h give delta = slope and r = 1 (to rounding)."""
  k = NAMES.index("ramp")
  n = LENGTHS[k]
  for w in (9, 27):
    h = w // 2
    inner = slice(h, n - 2 * h)
    np.testing.assert_allclose(dyn64[w]["delta"][k, inner], 2.0, rtol=1e-12)
    np.testing.assert_allclose(dyn64[w]["r"][k, inner], 1.0, rtol=1e-12)


@pytest.mark.parametrize("window", [27, 9])
def test_phases_match_numpy_reference(phases, window):
  with_smile = 0
  for k, name in enumerate(NAMES):
    n = LENGTHS[k]
    want = ref.ref_detect_phases(SERIES[k], window, 50.0)
    np.testing.assert_array_equal(phases[window][k, :n], want, err_msg=name)
    assert not phases[window][k, n:].any()
    with_smile += int(want.any())
  assert with_smile >= 4  # the batch exercises real smiles, not only "none"
  if window == 27:
    k = NAMES.index("two_smiles")
    starts = np.flatnonzero(np.diff((phases[27][k] == 1).astype(int)) == 1)
    assert len(starts) + int(phases[27][k, 0] == 1) == 2  # two separate smiles in one sequence
    assert not phases[27][NAMES.index("no_smile")].any()


@pytest.fixture(scope="module")
def trend_misc():
  """One compilation (float32) for the direct uses of trend: unpadded short series, the plain edge rule, the same
  batch computed batched and with vmap, and gradients."""
  one_smile = SERIES[NAMES.index("one_smile")].astype(np.float32)
  x = X64_PADDED[2:6].astype(np.float32)
  n = LENGTHS[2:6]
  grad_inputs = np.stack(
    [np.full(30, 2.5), X64_PADDED[NAMES.index("constant_stretches"), :30], np.linspace(0, 1, 30), np.zeros(30)]
  ).astype(np.float32)

  def loss(s):
    d, r, da = auda.trend(s, window=9)
    return jnp.sum(d) + jnp.sum(r) + jnp.sum(da)

  @jax.jit
  def run(x1, x5, xs, x, n, g):
    return dict(
      t1=auda.trend(x1, window=9),
      t5=auda.trend(x5, window=9),
      legacy=auda.trend(xs, window=9)[0],
      plain=auda.trend(xs, window=9, legacy_edge=False)[0],
      batched=auda.trend(x, window=9, length=n),
      mapped=jax.vmap(lambda s, m: auda.trend(s, window=9, length=m))(x, n),
      grads=jax.vmap(jax.grad(loss))(g),
    )

  x1 = np.array([0.4321], np.float32)
  x5 = np.array([1.0, 3.0, 2.0, 5.0, 4.0], np.float32)  # shorter than the window
  out = jax.tree.map(np.asarray, run(x1, x5, one_smile, x, n, grad_inputs))
  return out, x1, x5, one_smile


def test_trend_unpadded_short_series_and_legacy_flag(trend_misc):
  out, x1, x5, one_smile = trend_misc
  for got, x in ((out["t1"], x1), (out["t5"], x5)):  # length 1 and shorter than the window
    for g, wnt in zip(got, ref.ref_trend(x, 9)):
      np.testing.assert_allclose(g, wnt, rtol=1e-5, atol=1e-6)
  n, h = len(one_smile), 4
  legacy, plain = out["legacy"], out["plain"]
  want = ref.ref_trend(one_smile, 9, legacy_edge=False)[0]
  assert np.abs(plain - want).max() <= 1e-5 * np.abs(want).max()
  np.testing.assert_array_equal(plain[: n - 2 * h], legacy[: n - 2 * h])  # differ only in the last 2h frames
  assert np.any(plain[n - 2 * h :] != legacy[n - 2 * h :])


def test_trend_jit_vmap_and_finite_gradients(trend_misc):
  out = trend_misc[0]
  for a, b in zip(out["batched"], out["mapped"]):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  assert np.all(np.isfinite(out["grads"]))  # constant windows, ramps and zeros included
  assert np.any(out["grads"] != 0)


def test_trend_rejects_even_or_tiny_windows():
  for w in (1, 2, 8):
    with pytest.raises(ValueError):
      auda.trend(np.zeros(10), window=w)


def test_scale_window():
  assert [auda.scale_window(w, 50) for w in (9, 27)] == [9, 27]
  assert [auda.scale_window(w, 25) for w in (9, 27)] == [5, 13]
  assert [auda.scale_window(w, 30) for w in (9, 27)] == [5, 17]
  assert [auda.scale_window(w, 60) for w in (9, 27)] == [11, 33]
  assert [auda.scale_window(w, 100) for w in (9, 27)] == [19, 55]
  assert auda.scale_window(9, 10) == 3
  assert auda.scale_window(9, 50 * 8 / 9) == 9  # exactly 8 (even) rounds up


def test_options_defaults_and_config():
  o = auda.AudaOptions()
  assert (
    o.clip_au,
    o.windows,
    o.legacy_edge,
    o.phase_window,
    o.phase_stability,
    o.min_smile_seconds,
    o.segments,
    o.cross_au_abs,
    o.time_unit,
  ) == (False, (9, 27), True, 27, 3, 1.0, ("onset", "apex", "offset", "whole_smile"), True, "seconds")
  cfg = ml_collections.ConfigDict(dict(legacy_edge=False, segments=["onset", "whole_sequence"], time_unit="frames"))
  o2 = auda.AudaOptions.from_config(cfg)
  assert o2.legacy_edge is False and o2.segments == ("onset", "whole_sequence") and o2.time_unit == "frames"
  assert auda.AudaOptions.from_config(None) == o and auda.AudaOptions.from_config({"clip_au": True}).clip_au
  hash(o2)  # static jit argument
  with pytest.raises(ValueError, match="unknown AUDA option"):
    auda.AudaOptions.from_config({"legacy_edges": True})
  with pytest.raises(ValueError):
    auda.AudaOptions(segments=("onset", "middle"))
  with pytest.raises(ValueError):
    auda.AudaOptions(time_unit="minutes")
  assert auda.feature_dims() == {
    "frame": 154,
    "au_wise_segment": 119,
    "au_wise": 476,
    "cross_au_segment": 1088,
    "cross_au": 4352,
  }


def test_pair_index():
  assert auda.pair_index(0, 1) == 0 and auda.pair_index(15, 16) == 135
  assert auda.pair_index(AU_INDEX[6], AU_INDEX[12]) == 61
  for p, (i, j) in enumerate(auda.AU_PAIRS):
    assert auda.pair_index(int(i), int(j)) == p


def test_frame_layout_matches_spec_example():
  # auda.md §7: AU12 (a = 8) sits at 8, 25, 42, 59, 76, 93, 110, 127, 144; SI at 153.
  assert [i for i in range(154) if layout.frame_feature_au(i) == 8] == [8, 25, 42, 59, 76, 93, 110, 127, 144]
  assert layout.frame_feature_au(153) is None
  m = layout.feature_to_au_matrix("frame")
  assert m.shape == (154, 17)
  np.testing.assert_array_equal(m.sum(axis=0), np.full(17, 9.0))  # 9 per-AU columns each
  np.testing.assert_array_equal(m[153], np.zeros(17))
  assert layout.frame_feature_names()[127] == "AU12 Δ̂²9"
  assert len(layout.frame_feature_names()) == 154


def test_au_wise_layout_matches_spec_example():
  # auda.md §8: AU12 at 8, 25, 42, 67 (mean Δ9), 68 (mean Δ27), 101 (max Δ9), 102 (max Δ27); §10: segments of 119.
  au12 = [i for i in range(119) if layout.au_wise_feature_au(i) == 8]
  assert au12 == [8, 25, 42, 67, 68, 101, 102]
  assert [layout.au_wise_feature_au(i + 2 * 119) for i in au12] == [8] * 7
  m = layout.feature_to_au_matrix("au_wise", 476)
  np.testing.assert_array_equal(m.sum(axis=1), np.ones(476))
  np.testing.assert_array_equal(m.sum(axis=0), np.full(17, 28.0))  # 7 per segment x 4 segments
  names = layout.au_wise_feature_names()
  assert names[119 + 68] == "apex: AU12 mean Δ27"
  assert names[101] == "onset: AU12 max Δ9"


def test_cross_au_layout_matches_spec_example():
  # auda.md §9: pair (AU6, AU12) = (4, 8) has p = 61 and indices 122/123, 394/395, 666/667, 938/939.
  assert [layout.pair_index(i, j) for i, j in layout.CROSS_AU_PAIRS] == list(range(136))
  idx = [i for i in range(1088) if layout.cross_au_feature_pair(i) == (4, 8)]
  assert idx == [122, 123, 394, 395, 666, 667, 938, 939]
  assert layout.cross_au_feature_pair(1088 * 3 + 939) == (4, 8)
  m = layout.feature_to_au_matrix("cross_au", 4352)
  np.testing.assert_array_equal(m.sum(axis=1), np.ones(4352))
  np.testing.assert_array_equal(m[122, [4, 8]], [0.5, 0.5])
  # each AU is in 16 pairs x 8 features per pair x 4 segments, half each
  np.testing.assert_array_equal(m.sum(axis=0), np.full(17, 16 * 8 * 4 * 0.5))
  assert layout.cross_au_feature_names()[394] == "onset: AU06-AU12 max δΔ9"


# ---------------------------------------------------------------------------------------------------------------
# Features (auda.md sections 6-10) on a batch of synthetic videos
# ---------------------------------------------------------------------------------------------------------------

T_VIDEO = 192  # every video is 129..192 frames: one time bucket (64) for the batch and the single-video path
AU6, AU12 = AU_INDEX[6], AU_INDEX[12]


def _video(seed, t_len, smiles, si_noise=2e-4):
  rng = np.random.default_rng(seed)
  t = np.arange(t_len)
  smile = np.zeros(t_len)
  for centre, width in smiles:
    smile += np.exp(-0.5 * ((t - centre) / width) ** 2)
  si = -0.012 + 0.02 * smile + np.cumsum(rng.normal(0, si_noise, t_len)) * 0.2
  weights = rng.uniform(0, 1, 17)
  weights[[AU6, AU12]] = (1.5, 2.5)
  au = np.cumsum(rng.normal(0, 0.03, (t_len, 17)), axis=0) + smile[:, None] * weights + rng.uniform(0, 1, 17)
  au[:, 3] = 0.25  # a constant AU (r := 1 everywhere)
  au[60:, 7] = np.round(au[60:, 7], 1)  # quantised stretches
  return np.round(au, 4), si


VIDEOS = {
  "001_spontaneous_smile_1": _video(1, 180, [(90, 22)]),
  "002_deliberate_smile_1": _video(2, 190, [(50, 12), (140, 14)]),  # two smiles
  "003_deliberate_smile_2": (_video(3, 150, [])[0], np.linspace(0.004, -0.011, 150)),  # no smile: empty segments
  "004_spontaneous_smile_3": _video(4, 131, [(70, 18)]),
  "005_deliberate_smile_4": _video(5, 192, [(100, 30)]),
}
VIDS = list(VIDEOS)


def _padded_videos():
  n = len(VIDEOS)
  lengths = np.array([len(si) for _, si in VIDEOS.values()], np.int32)
  t_pad = T_VIDEO + 9  # not a multiple of the bucket: extract_batch re-buckets
  au = np.full((n, t_pad, 17), np.nan)  # garbage beyond each length must not matter
  si = np.full((n, t_pad), np.nan)
  for b, (a, s) in enumerate(VIDEOS.values()):
    au[b, : len(s)] = a
    si[b, : len(s)] = s
  return au, si, lengths


@pytest.fixture(scope="module")
def batch64():
  au, si, lengths = _padded_videos()
  with jax.enable_x64(True):
    # chunks of one video: the same compiled pieces as the single-video path (test_single_video_path...)
    return auda.extract_batch(au, si, lengths, names=VIDS, chunk_size=1)


@pytest.fixture(scope="module")
def refs():
  return {vid: ref.ref_extract(a, s) for vid, (a, s) in VIDEOS.items()}


@pytest.fixture(scope="module")
def ref_dynamics_by_video():
  return {vid: ref.ref_all_dynamics(a) for vid, (a, s) in VIDEOS.items()}


def test_feature_dimensions(batch64):
  n = len(VIDEOS)
  assert batch64.frame_BxTxD.shape == (n, T_VIDEO + 9, 154)
  assert batch64.au_wise_BxD.shape == (n, 476)
  assert batch64.cross_au_BxD.shape == (n, 4352)
  assert batch64.phases_BxT.shape == (n, T_VIDEO + 9)
  assert batch64.frame_BxTxD.dtype == np.float64  # x64 enabled by the caller


def test_features_match_numpy_reference_float64(batch64, refs):
  for b, vid in enumerate(VIDS):
    r, n = refs[vid], len(VIDEOS[vid][1])
    np.testing.assert_array_equal(batch64.phases_BxT[b, :n], r["phases"], err_msg=vid)
    np.testing.assert_allclose(batch64.frame_BxTxD[b, :n], r["frame"], rtol=1e-9, atol=1e-12, err_msg=vid)
    np.testing.assert_allclose(batch64.au_wise_BxD[b], r["au_wise"], rtol=1e-9, atol=1e-12, err_msg=vid)
    np.testing.assert_allclose(batch64.cross_au_BxD[b], r["cross_au"], rtol=1e-9, atol=1e-12, err_msg=vid)
    assert bool(batch64.no_smile_detected_B[b]) == r["no_smile_detected"]
    # padded frames excluded everywhere: zero features and no phase
    assert not batch64.frame_BxTxD[b, n:].any() and not batch64.phases_BxT[b, n:].any()


def test_multiple_smiles_and_empty_segment(batch64, refs):
  b = VIDS.index("002_deliberate_smile_1")
  starts = np.flatnonzero(np.diff(np.r_[0, (batch64.phases_BxT[b] == 1).astype(int)]) == 1)
  assert len(starts) == 2, "the two-smile video should give two onsets (segments are unions of frames)"
  b = VIDS.index("003_deliberate_smile_2")
  assert bool(batch64.no_smile_detected_B[b]) and not batch64.phases_BxT[b].any()
  assert not batch64.au_wise_BxD[b].any() and not batch64.cross_au_BxD[b].any()
  assert batch64.frame_BxTxD[b, :150].any()  # frame-wise features do not depend on the phases
  assert int(batch64.no_smile_detected_B.sum()) == 1


def test_layout_by_hand(batch64, ref_dynamics_by_video):
  """Every block of the layouts at hand-picked indices (auda.md sections 7-10), AU12 and the pair (AU6, AU12)."""
  b = VIDS.index("001_spontaneous_smile_1")
  au, si = VIDEOS[VIDS[b]]
  n, fps = len(si), 50.0
  dyn = ref_dynamics_by_video[VIDS[b]]
  frame = batch64.frame_BxTxD[b, :n]
  # section 7: AU12 (a = 8) at 8, 25, 42, 59, 76, 93, 110, 127, 144; SI at 153
  want = [
    au[:, 8],
    dyn[("delta", 0)][:, 8],
    dyn[("delta", 1)][:, 8],
    dyn[("delta_adj", 0)][:, 8],
    dyn[("delta_adj", 1)][:, 8],
    dyn[("delta2", 0)][:, 8],
    dyn[("delta2", 1)][:, 8],
    dyn[("delta2_adj", 0)][:, 8],
    dyn[("delta2_adj", 1)][:, 8],
    si,
  ]
  for idx, w in zip([8, 25, 42, 59, 76, 93, 110, 127, 144, 153], want):
    np.testing.assert_allclose(frame[:, idx], w, rtol=1e-9, atol=1e-12, err_msg=f"frame column {idx}")
  phases = batch64.phases_BxT[b, :n]
  segments = {"onset": phases == 1, "apex": phases == 2, "offset": phases == 3, "whole_smile": phases > 0}
  aw, ca = batch64.au_wise_BxD[b], batch64.cross_au_BxD[b]
  for s, (seg, mask) in enumerate(segments.items()):
    assert mask.any(), seg
    frames = np.flatnonzero(mask)
    x = au[mask, 8]
    d9, d27 = dyn[("delta", 0)][mask, 8], dyn[("delta", 1)][mask, 8]
    o = 119 * s  # section 8 + 10: AU12 at 8, 25, 42, 67, 68, 101, 102
    np.testing.assert_allclose(
      aw[o + np.array([8, 25, 42, 67, 68, 101, 102])],
      [x.max() - x.min(), x.mean(), x.max(), d9.mean(), d27.mean(), d9.max(), d27.max()],
      rtol=1e-9,
      atol=1e-12,
      err_msg=seg,
    )
    o = 1088 * s  # section 9 + 10: pair (AU6, AU12), p = 61
    for k in (0, 1):
      dd = np.abs(dyn[("delta", k)][mask, AU6] - dyn[("delta", k)][mask, AU12])
      da6, da12 = dyn[("delta_adj", k)][mask, AU6], dyn[("delta_adj", k)][mask, AU12]
      up = (frames[np.argmax(da6)] - frames[np.argmax(da12)]) / fps
      down = (frames[np.argmin(da6)] - frames[np.argmin(da12)]) / fps
      np.testing.assert_allclose(
        ca[o + np.array([122, 394, 666, 938]) + k],
        [dd.min(), dd.max(), up, down],
        rtol=1e-9,
        atol=1e-12,
        err_msg=f"{seg} k={k}",
      )


def test_single_video_path_and_padding_semantics(batch64):
  """extract on the unpadded series equals the padded batch; the edge rule is applied at the real length."""
  for vid in ("004_spontaneous_smile_3", "002_deliberate_smile_1"):
    b = VIDS.index(vid)
    au, si = VIDEOS[vid]
    with jax.enable_x64(True):
      f = auda.extract(au, si, name=vid)
    n = len(si)
    assert f.frame_TxD.shape == (n, 154) and f.au_wise_D.shape == (476,) and f.cross_au_D.shape == (4352,)
    np.testing.assert_allclose(np.asarray(f.frame_TxD), batch64.frame_BxTxD[b, :n], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(f.au_wise_D), batch64.au_wise_BxD[b], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(f.cross_au_D), batch64.cross_au_BxD[b], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(np.asarray(f.phases_T), batch64.phases_BxT[b, :n])
    assert f.no_smile_detected == bool(batch64.no_smile_detected_B[b])


def test_detect_phases_single_series(batch64):
  for b in (0, 1):
    si = VIDEOS[VIDS[b]][1]
    got = auda.detect_phases(si)
    assert got.dtype == jnp.int32 and got.shape == si.shape
    np.testing.assert_array_equal(np.asarray(got), batch64.phases_BxT[b, : len(si)])


@pytest.mark.parametrize("workers", [1, 2])
def test_phases_in_chunks_equal_the_whole_batch(batch64, workers):
  """extract_batch's phase pass in chunks (the last one padded with copies; with workers, re-balanced) gives every
  video the phases of the whole batch at once."""
  au, si, lengths = _padded_videos()
  si = np.nan_to_num(si[:, :T_VIDEO])
  got = batching._phases_for(si, lengths, 50.0, auda.AudaOptions(), chunk=2, workers=workers)
  assert got.shape == si.shape and got.dtype == np.int32
  np.testing.assert_array_equal(got, batch64.phases_BxT[:, :T_VIDEO])
  assert not np.all(got == 0)


def test_extract_batch_workers_give_the_same_features():
  """Chunks computed at once in threads (the configs' auda_batch.workers) write the same values in the same rows."""
  au, si, lengths = _padded_videos()
  one, two = (auda.extract_batch(au, si, lengths, chunk_size=2, workers=w) for w in (1, 2))
  assert one.frame_BxTxD.dtype == np.float32
  for a, b in zip(one, two):
    np.testing.assert_array_equal(a, b)
  assert np.any(one.frame_BxTxD != 0, axis=(1, 2)).all() and np.any(one.cross_au_BxD != 0)


def _tied_timings(da_seg, frames, i, j, extreme, tol_i, tol_j):
  """The values frames[arg-extreme of da_i] - frames[arg-extreme of da_j] can take (in frames) when each arg-extreme
  may be any frame whose float64 value is within tol of the extreme (a float32-level tie)."""
  cand_i = frames[np.abs(da_seg[:, i] - extreme(da_seg[:, i])) <= tol_i]
  cand_j = frames[np.abs(da_seg[:, j] - extreme(da_seg[:, j])) <= tol_j]
  return np.unique(cand_i[:, None] - cand_j[None, :])


def _check_timing_blocks(got_ca, ref_ca, ref_dyn, phases, n, fps=50.0):
  """Cross-AU timing blocks (auda.md section 9: frame of max / min delta_adj of AU i minus that of AU j): a float32
  value may differ from the float64 reference only by at most two frames, and only where the reference's
  arg-extreme has a float32-level tie (values within 1e-5 x column max, the float32 path's accuracy) that gives
  exactly the float32 value. Returns the share of values equal to the reference."""
  pairs = [(i, j) for i in range(17) for j in range(i + 1, 17)]
  got = got_ca.reshape(4, 4, len(pairs), 2)
  want = ref_ca.reshape(4, 4, len(pairs), 2)
  masks = (phases == 1, phases == 2, phases == 3, phases > 0)
  exact = np.abs(got[:, 2:] - want[:, 2:]) < 1e-6
  for s, b, p, k in zip(*np.nonzero(~exact)):
    block, (i, j) = b + 2, pairs[p]
    g, w = got[s, block, p, k], want[s, block, p, k]
    where = f"segment {s}, block {block}, pair {(i, j)}, window {k}: float32 {g}, float64 {w}"
    assert abs(g - w) <= 2 / fps + 1e-6, where
    da = ref_dyn[("delta_adj", k)][:n]
    frames = np.flatnonzero(masks[s])
    tol = 1e-5 * np.abs(da).max(axis=0)
    options = _tied_timings(da[frames], frames, i, j, np.max if block == 2 else np.min, tol[i], tol[j]) / fps
    assert np.min(np.abs(options - g)) < 1e-6, f"no float32-level tie explains {where}"
  return float(exact.mean())


def test_compute_features_float32_jittable(refs, ref_dynamics_by_video):
  """The pure jittable path in default float32: within 1e-5 x column max of the float64 reference."""
  au, si, lengths = _padded_videos()
  t = T_VIDEO
  ph = np.zeros((len(VIDS), t), np.int32)
  for b, vid in enumerate(VIDS):
    ph[b, : lengths[b]] = refs[vid]["phases"]
  au32 = np.nan_to_num(au[:, :t], nan=7.0).astype(np.float32)
  si32 = np.nan_to_num(si[:, :t], nan=7.0).astype(np.float32)
  out = jax.jit(lambda a, s, p, n: auda.compute_features(a, s, p, n))(au32, si32, ph, lengths)
  assert out["frame"].dtype == jnp.float32
  for b, vid in enumerate(VIDS):
    r, n = refs[vid], lengths[b]
    fr = np.asarray(out["frame"][b, :n])
    assert np.all(np.abs(fr - r["frame"]) <= 1e-5 * np.abs(r["frame"]).max(axis=0) + 1e-30), vid
    aw, ca = np.asarray(out["au_wise"][b]), np.asarray(out["cross_au"][b])
    assert np.all(np.isfinite(aw)) and np.all(np.isfinite(ca))
    np.testing.assert_allclose(aw, r["au_wise"], rtol=1e-4, atol=1e-5 * np.abs(r["au_wise"]).max())
    # min/max blocks to float32 precision; the time blocks may move by a frame or two where float32 breaks a tie
    blocks = ca.reshape(4, 4, 272)
    want = r["cross_au"].reshape(4, 4, 272)
    np.testing.assert_allclose(blocks[:, :2], want[:, :2], rtol=1e-4, atol=1e-5 * np.abs(want[:, :2]).max())
    assert _check_timing_blocks(ca, r["cross_au"], ref_dynamics_by_video[vid], r["phases"], n) >= 0.98, vid


def test_float32_constant_windows():
  """The float32 fast path's constant-window test (sum of (v_k - v_c)^2 == 0, auda.regression._regress_centred) on
  stretches of zeros, of tiny values (2^-38 = 3.6e-12, its stated limit) and of ordinary values, next to tiny and
  ordinary changes: delta and delta_adj are exactly 0 inside the stretches, finite everywhere, and within 1e-5 x
  column max of the float64 NumPy reference."""
  rng = np.random.default_rng(11)
  t_len = 160
  au = np.round(np.cumsum(rng.normal(0, 0.03, (t_len, 17)), axis=0) + 1.0, 2)
  au[20:80, 0] = 0.0
  au[20:80, 1] = 2.0**-38
  au[80:, 1] = np.where(np.arange(80, t_len) % 7 == 0, 2.0**-37, 2.0**-38)  # tiny changes
  au[30:110, 2] = 0.25
  au[:, 3] = np.where(np.arange(t_len) % 40 < 30, 1.5, 1.51)
  si = -0.012 + 0.02 * np.exp(-0.5 * ((np.arange(t_len) - 80) / 20.0) ** 2)
  au = au.astype(np.float32).astype(np.float64)  # the float32 input is what the reference sees
  r = ref.ref_extract(au, si)
  out = auda.extract_batch(au[None].astype(np.float32), si[None], np.array([t_len]))
  fr = out.frame_BxTxD[0]
  assert fr.dtype == np.float32 and np.all(np.isfinite(fr))
  assert np.all(np.abs(fr - r["frame"]) <= 1e-5 * np.abs(r["frame"]).max(axis=0) + 1e-30)
  for c, (a, b) in ((0, (20, 80)), (1, (20, 80)), (2, (30, 110))):
    for block in (1, 2, 3, 4):  # delta_9, delta_27, delta_adj_9, delta_adj_27
      w = 9 if block % 2 else 27
      inside = np.arange(a + w // 2, b - w // 2)
      assert np.all(fr[inside, 17 * block + c] == 0.0), (c, block)
  assert np.any(fr[:, 17 * 1 + 1] != 0.0) and np.any(fr[:, 17 * 3 + 1] != 0.0)  # tiny changes are resolved


def test_short_video_is_an_input_error():
  au, si = VIDEOS[VIDS[0]]
  with pytest.raises(InputError, match="^007_deliberate_smile_9: 26 frames is shorter"):
    auda.extract(au[:26], si[:26], name="007_deliberate_smile_9")
  lengths = np.array([180, 20])
  with pytest.raises(InputError, match="^008_spontaneous_smile_1: 20 frames"):
    auda.extract_batch(
      np.stack([au, au]), np.stack([si, si]), lengths, names=["001_spontaneous_smile_1", "008_spontaneous_smile_1"]
    )
  bad = si.copy()
  bad[5] = np.nan
  with pytest.raises(InputError, match="NaN"):
    auda.extract(au, bad, name="x")


def test_non_default_options_match_numpy_reference():
  """Other frame rate (windows 5 and 13 at 25 fps), signed cross-AU differences, frames as the time unit, another
  segment list (with whole_sequence), clipping and the plain edge rule: all against the NumPy reference."""
  au, si = VIDEOS["002_deliberate_smile_1"]
  au = au.copy()
  au[:20, 0] = 6.5  # something for clip_au to clip
  options = dict(
    cross_au_abs=False,
    time_unit="frames",
    segments=("whole_sequence", "apex", "onset"),
    clip_au=True,
    legacy_edge=False,
    min_smile_seconds=0.5,
  )
  with jax.enable_x64(True):
    f = auda.extract(au, si, fps=25.0, options=ml_collections.ConfigDict(options), name="x")
  r = ref.ref_extract(au, si, fps=25.0, **options)
  assert f.au_wise_D.shape == (3 * 119,) and f.cross_au_D.shape == (3 * 1088,)
  np.testing.assert_array_equal(np.asarray(f.phases_T), r["phases"])
  assert r["phases"].any()
  for got, want in ((f.frame_TxD, r["frame"]), (f.au_wise_D, r["au_wise"]), (f.cross_au_D, r["cross_au"])):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12)
  assert np.asarray(f.frame_TxD)[:20, 0].max() == 5.0


def test_row_packing_of_label_frames():
  """The batched path packs each label's frames into rows of ``row_size`` slots (segments.row_indices): every real
  frame of a segment label exactly once, in time order, a row's spare slots repeating its first frame."""
  phases = np.zeros((2, 150), np.int32)
  phases[0, 10:80] = 1  # 70 onset frames -> 3 rows of 32
  phases[0, 80:85] = 2  # 5 apex frames -> 1 row
  phases[0, 85:118] = 3  # 33 offset frames -> 2 rows
  phases[0, 140:150] = 2  # beyond the real length: ignored
  phases[1, 20:30] = 3  # one label only
  lengths = np.array([130, 150])
  idx, count, label = segments.row_indices(phases, lengths, (1, 2, 3), 32)
  assert idx.shape == (2, 8, 32) and count.shape == label.shape == (2, 8)  # 6 rows, rounded up to a multiple of 4
  np.testing.assert_array_equal(count[0], [32, 32, 6, 5, 32, 1, 0, 0])
  np.testing.assert_array_equal(label[0], [0, 0, 0, 1, 2, 2, -1, -1])
  np.testing.assert_array_equal(count[1], [10, 0, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(label[1], [2, -1, -1, -1, -1, -1, -1, -1])
  for b in range(2):
    for q, lab in enumerate((1, 2, 3)):
      rows = np.flatnonzero(label[b] == q)
      got = np.concatenate([idx[b, r, : count[b, r]] for r in rows]) if len(rows) else np.zeros(0, int)
      np.testing.assert_array_equal(got, np.flatnonzero(phases[b, : lengths[b]] == lab))
      for r in rows:
        assert np.all(idx[b, r, count[b, r] :] == idx[b, r, 0])
