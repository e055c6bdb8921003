"""Tests for smilejax/explain.py: layout helpers against the spec's examples, gradient × input against closed forms
on linear Flax models wrapped in fake TrainedModel-like objects, fusion scoring, the plot, and explain_video on a
fold trained by the experiment (its probabilities are the fold's predictions.csv)."""

from __future__ import annotations

import runpy
import types
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from smilejax import auda, constants, experiment, explain
from smilejax import models as smodels
from smilejax import workdir as workdir_lib
from smilejax.auda import layout

A = constants.NUM_AUS


# --------------------------------------------------------------------------------------------------------------------
# Linear models with closed-form attributions
# --------------------------------------------------------------------------------------------------------------------
class LinearVector(nn.Module):
  """logit = w·x + b; feats = 2 linear projections (so fusion has something fixed-size to concatenate)."""

  @nn.compact
  def __call__(self, x, lengths=None, *, train):
    del lengths, train
    return nn.Dense(1, name="w")(x)[:, 0], nn.Dense(2, name="proj")(x)


class LinearFrames(nn.Module):
  """logit = Σ_t m_t (w·x_t) + b over real frames; feats = projection of the masked mean."""

  @nn.compact
  def __call__(self, x, lengths, *, train):
    del train
    mask = (jnp.arange(x.shape[1])[None, :] < lengths[:, None]).astype(x.dtype)
    per_t = nn.Dense(1, name="w")(x)[..., 0] - self.param("b0", nn.initializers.zeros, ())
    logit = jnp.sum(per_t * mask, axis=1)
    mean = jnp.sum(x * mask[..., None], axis=1) / lengths[:, None]
    return logit, nn.Dense(2, name="proj")(mean)


def fake_trained(module, variables, *, standardizer=None, config=None):
  """A duck-typed TrainedModel: .module, .variables, .standardizer, .config, .predict."""

  def predict(x, lengths):
    logit, feats = explain.apply_model(
      types.SimpleNamespace(module=module, variables=variables), explain.standardize(x, standardizer), lengths
    )
    return 1 / (1 + np.exp(-logit)), feats

  return types.SimpleNamespace(
    module=module, variables=variables, standardizer=standardizer, config=config or {}, predict=predict
  )


def linear_variables(rng, d, *, frames=False):
  """Parameters of LinearVector / LinearFrames drawn directly (no init compilation needed)."""
  params = {
    "w": {"kernel": rng.normal(size=(d, 1)).astype(np.float32), "bias": np.float32([0.3])},
    "proj": {"kernel": rng.normal(size=(d, 2)).astype(np.float32) / np.sqrt(d), "bias": np.float32([0.1, -0.2])},
  }
  if frames:
    params["b0"] = np.float32(0.0)
  return {"params": jax.tree_util.tree_map(jnp.asarray, params)}


def _w(model, name="w"):
  return np.asarray(model.variables["params"][name]["kernel"], dtype=np.float64)[:, 0]


@pytest.fixture(scope="module")
def linear_setup():
  rng = np.random.default_rng(3)
  n_frames = 104  # 104 % 5 = 4 >= 10/3: the last frame is appended (realsmilenet.md §2)
  feats = types.SimpleNamespace(
    frame_TxD=rng.normal(size=(n_frames, 154)),
    au_wise_D=rng.normal(size=476),
    cross_au_D=rng.normal(size=4352),
    phases_T=np.repeat([0, 1, 2, 3, 0], [10, 20, 40, 24, 10]),
    no_smile_detected=False,
  )
  std_frame = (rng.normal(size=154), rng.uniform(0.5, 2.0, size=154))
  std_au = {"mean": rng.normal(size=476), "std": np.where(np.arange(476) == 5, 0.0, rng.uniform(0.5, 2, 476))}
  std_cross = types.SimpleNamespace(mean=rng.normal(size=4352), std=rng.uniform(0.5, 2.0, size=4352))
  models = {
    "framewise": fake_trained(LinearFrames(), linear_variables(rng, 154, frames=True), standardizer=std_frame),
    "auwise": fake_trained(LinearVector(), linear_variables(rng, 476), standardizer=std_au),
    "crossau": fake_trained(LinearVector(), linear_variables(rng, 4352), standardizer=std_cross),
    "fusion_auda": fake_trained(LinearVector(), linear_variables(rng, 6)),
  }
  au_TxA = rng.uniform(0, 3, size=(n_frames, A))
  si_T = rng.normal(scale=0.01, size=n_frames)
  expl = explain.explain_features(models, feats, fps=50.0, au_TxA=au_TxA, si_T=si_T, video_id="001_test")
  return models, feats, expl, (std_frame, std_au, std_cross)


def test_vector_attributions_equal_closed_form(linear_setup):
  models, feats, expl, (_, std_au, std_cross) = linear_setup
  for method, x, (mean, std), kind in (
    ("auwise", feats.au_wise_D, (std_au["mean"], std_au["std"]), "au_wise"),
    ("crossau", feats.cross_au_D, (std_cross.mean, std_cross.std), "cross_au"),
  ):
    std = np.where(std > 0, std, 1.0)
    z = (x - mean) / std
    w = _w(models[method])
    np.testing.assert_allclose(expl.feature_attributions[method], w * z, rtol=1e-4, atol=1e-5)
    expected = (w * z) @ explain.feature_to_au_matrix(kind, x.size)
    got = expl.attributions[expl.attributions["method"] == method].set_index("AU")["attribution"]
    np.testing.assert_allclose(got.loc[list(constants.AU_NAMES)].to_numpy(), expected, rtol=1e-4, atol=1e-4)
    b = float(models[method].variables["params"]["w"]["bias"][0])
    assert expl.logits[method] == pytest.approx(float(w @ z) + b, rel=1e-4, abs=1e-4)
    assert expl.probabilities[method] == pytest.approx(1 / (1 + np.exp(-(w @ z + b))), rel=1e-4)


def test_cross_au_pair_is_split_half_to_each_au():
  attr = np.zeros(4352)
  attr[122] = 3.0  # onset, min δΔ9 of (AU06, AU12)
  attr[1088 + 0] = -1.0  # apex, pair (AU01, AU02)
  per_au = explain.per_au_attribution("crossau", attr)
  assert per_au["AU06"] == pytest.approx(1.5) and per_au["AU12"] == pytest.approx(1.5)
  assert per_au["AU01"] == pytest.approx(-0.5) and per_au["AU02"] == pytest.approx(-0.5)
  assert sum(per_au.values()) == pytest.approx(2.0)


def test_framewise_attributions_equal_closed_form(linear_setup):
  models, feats, expl, (std_frame, _, _) = linear_setup
  idx = list(range(0, 104, 5)) + [103]
  np.testing.assert_array_equal(expl.sampled_frames, idx)
  z = (feats.frame_TxD[idx] - std_frame[0]) / std_frame[1]  # [T', 154]
  w = _w(models["framewise"])
  np.testing.assert_allclose(expl.feature_attributions["framewise"], w * z, rtol=1e-4, atol=1e-5)
  per_feature = (w * z).sum(axis=0)
  got = expl.attributions[expl.attributions["method"] == "framewise"].set_index("AU")["attribution"]
  for a, au in enumerate(constants.AU_NAMES):
    cols = [a + 17 * b for b in range(9)]
    assert got[au] == pytest.approx(per_feature[cols].sum(), rel=1e-4, abs=1e-4)
  assert got["SI"] == pytest.approx(per_feature[153], rel=1e-4, abs=1e-4)
  assert len(got) == A + 1


def test_fusion_probability_uses_member_features_in_order(linear_setup):
  models, feats, expl, (std_frame, std_au, std_cross) = linear_setup

  def proj(model, v):
    p = model.variables["params"]["proj"]
    return v @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)

  # members' final features in closed form, concatenated framewise, auwise, crossau (realsmilenet.md §7)
  z_frames = (feats.frame_TxD[expl.sampled_frames] - std_frame[0]) / std_frame[1]
  z_au = (feats.au_wise_D - std_au["mean"]) / np.where(std_au["std"] > 0, std_au["std"], 1.0)
  z_cross = (feats.cross_au_D - std_cross.mean) / std_cross.std
  x = np.concatenate(
    [proj(models["framewise"], z_frames.mean(axis=0)), proj(models["auwise"], z_au), proj(models["crossau"], z_cross)]
  )
  fusion = models["fusion_auda"]
  logit = x @ _w(fusion) + float(fusion.variables["params"]["w"]["bias"][0])
  assert expl.probabilities["fusion_auda"] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-4)
  assert "fusion_all" not in expl.probabilities and "realsmilenet" not in expl.probabilities


def test_fusion_all_needs_realsmilenet_frames(linear_setup):
  models, feats, _, _ = linear_setup
  m = dict(models)
  m["fusion_all"] = models["fusion_auda"]
  m["realsmilenet"] = models["auwise"]
  expl = explain.explain_features(m, feats, fps=50.0)
  assert "fusion_all" not in expl.probabilities
  assert any("realsmilenet" in n for n in expl.notes) and any("fusion_all" in n for n in expl.notes)


def test_attributions_conserve_total_on_a_real_vectornet():
  """On a real (non-linear) AU-wise model the per-AU sums must conserve the feature total."""
  rng = np.random.default_rng(0)
  module = smodels.build("auwise")
  init = jax.jit(lambda key, x: module.init(key, x, None, train=False))
  model = fake_trained(module, init(jax.random.PRNGKey(0), jnp.zeros((2, 476), jnp.float32)))
  x = rng.normal(size=(1, 476))
  logit, _, a = explain.gradient_x_input(model, x, np.ones(1))
  per_au = explain.per_au_attribution("auwise", a[0])
  assert sum(per_au.values()) == pytest.approx(float(a.sum()), rel=1e-5, abs=1e-6)
  # gradient check on one coordinate: (logit(z + h e_i) - logit(z - h e_i)) / 2h ≈ a_i / z_i
  i, h = int(np.argmax(np.abs(a[0]))), 1e-2
  zp, zm = x.copy(), x.copy()
  zp[0, i] += h
  zm[0, i] -= h
  lp, _, _ = explain.gradient_x_input(model, zp, np.ones(1))  # same shapes: no new compilation
  lm, _, _ = explain.gradient_x_input(model, zm, np.ones(1))
  assert (lp[0] - lm[0]) / (2 * h) == pytest.approx(a[0, i] / x[0, i], rel=2e-2, abs=1e-4)
  assert np.isfinite(logit).all()


def test_plot_explanation(linear_setup, tmp_path):
  _, _, expl, _ = linear_setup
  fig = explain.plot_explanation(expl, top_k=6)
  ax_bar, ax_t = fig.axes[0], fig.axes[1]
  assert [t.get_text() for t in ax_bar.get_yticklabels()] == explain.top_aus(expl, 6)
  assert len(ax_bar.patches) == 6 * 3
  # phases 1, 2, 3 each one run -> 3 shaded spans
  assert len([p for p in ax_t.patches]) == 3
  fig.savefig(tmp_path / "explain.png", dpi=60)
  plt.close(fig)
  top = expl.top_features("crossau", k=5)
  assert len(top) == 5 and top["attribution"].abs().is_monotonic_decreasing


def test_standardize_forms():
  x = np.array([[1.0, 2.0, 3.0]])
  for s in (
    (np.zeros(3), np.array([1.0, 0.0, 2.0])),
    {"mean": np.zeros(3), "std": np.array([1.0, 0.0, 2.0])},
    types.SimpleNamespace(mean=np.zeros(3), std=np.array([1.0, 0.0, 2.0])),
  ):
    np.testing.assert_allclose(explain.standardize(x, s), [[1.0, 2.0, 1.5]])  # std 0 -> 1
  np.testing.assert_allclose(explain.standardize(x, None), x)


@pytest.fixture(scope="module")
def auda_fold(tiny_corpus, tmp_path_factory):
  """Fold 1 of the tiny config (configs/test.py) trained by the experiment, AUDA methods only (no RealSmileNet
  compilation) and one epoch each: its directory and predictions.csv."""
  c = runpy.run_path(str(Path(__file__).resolve().parents[1] / "configs" / "test.py"))["get_config"]()
  c.data.synthetic_dir = str(tiny_corpus)
  c.methods = ("framewise", "auwise", "crossau", "fusion_auda")
  c.folds = (1,)
  c.train.epochs = 1
  c.timing.enabled = False
  workdir = tmp_path_factory.mktemp("wd")
  experiment.check_workdir(c, workdir, folds=[1])
  experiment.run_fold(c, workdir, 1)
  fold = workdir_lib.fold_dir(workdir, 1)
  return fold, pd.read_csv(fold / workdir_lib.PREDICTIONS, dtype={"id": str, "subject": str})


def test_explain_video_gives_the_folds_predictions(auda_fold):
  """Files of each test video (fold_test_video) -> readers -> auda.extract -> the fold's trained models: the
  probabilities are those the experiment recorded in predictions.csv (6 decimals: within 5e-7 + float32 noise)."""
  fold, preds = auda_fold
  models = explain.load_models(fold)
  assert set(models) == {"framewise", "auwise", "crossau", "fusion_auda"}
  assert len(preds) >= 2
  for video_id in preds["id"]:
    inputs = explain.fold_test_video(fold, video_id)
    assert inputs["id"] == video_id and inputs["video"] is not None
    expl = explain.explain_video(fold, openface_csv=inputs["openface_csv"], si_file=inputs["si_file"], models=models)
    assert expl.video_id == video_id
    assert set(expl.probabilities) == set(models)
    for method, p in expl.probabilities.items():
      assert abs(p - inputs["predictions"][method]) <= 2e-6, (video_id, method, p, inputs["predictions"][method])
    assert len(expl.attributions) == 3 * A + 1
    assert np.isfinite(expl.attributions["attribution"]).all()


def test_layout_agrees_with_auda_extract():
  """Only AU12 (and SI) vary: every non-zero feature auda.extract produces must be one the helpers assign to AU12
  (frame-wise: AU12's 9 columns + SI; AU-wise: AU12's 7 per segment; cross-AU: pairs containing AU12)."""
  a12 = constants.AU_NAMES.index("AU12")
  t = np.arange(200)
  env = np.clip(np.sin(np.pi * (t - 30) / 120), 0, None) * (t > 30) * (t < 150)
  au = np.zeros((200, A))
  au[:, a12] = 3 * env + 0.05 * np.sin(t / 3.0)
  f = auda.extract(au, -0.01 + 0.04 * env, fps=50.0)
  assert not f.no_smile_detected
  frame = np.asarray(f.frame_TxD)
  nz = set(np.flatnonzero(np.abs(frame).max(axis=0) > 0))
  assert nz == {i for i in range(154) if layout.frame_feature_au(i) in (a12, None)}
  nz = np.flatnonzero(np.asarray(f.au_wise_D) != 0)
  assert nz.size and all(layout.au_wise_feature_au(i) == a12 for i in nz)
  nz = np.flatnonzero(np.asarray(f.cross_au_D) != 0)
  assert nz.size and all(a12 in layout.cross_au_feature_pair(i) for i in nz)
  # and the AU12 max-Δ9 feature of the apex segment is where §8 puts it (85 + 2a + 0, segment 1)
  assert np.asarray(f.au_wise_D)[119 + 85 + 2 * a12] > 0
