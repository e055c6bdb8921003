"""Tests of smilejax.models (spec ``realsmilenet.md`` §1, §3, §4, §5, §7).

Tiny sizes; each distinct shape compiles once per module (fixtures are module-scoped). Most RealSmileNet checks run
the ``lax`` convolution path, which compiles fastest; the CPU-fast ``cnhw`` path (the default) is checked against it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from smilejax import models
from smilejax.models import layers as L
from smilejax.models import realsmilenet as R

T_PAD = 5
LENGTHS = (5, 3, 1)


def _key(seed):
  # The counter-based "unsafe_rbg" PRNG compiles in a fraction of threefry's time on CPU (tens of seconds for the
  # ~20 initialisers of RealSmileNet); the tests need random values, not a particular stream.
  return jax.random.key(seed, impl="unsafe_rbg")


def _frames(rng, b, t):
  return rng.random((b, t, 48, 48, 3), dtype=np.float32)


def _perturb(tree, rng, scale):
  """tree + scale * N(0, 1) leaves: weights away from their init so every block (non-local, BN) matters."""
  return jax.tree_util.tree_map(lambda a: a + scale * rng.standard_normal(a.shape).astype(np.float32), tree)


def _trained_like(variables, rng):
  params = _perturb(variables["params"], rng, 0.3)
  stats = variables["batch_stats"]
  stats = jax.tree_util.tree_map_with_path(
    lambda path, a: (
      (a + 0.2 * rng.standard_normal(a.shape).astype(np.float32))
      if path[-1].key == "mean"
      else a * np.exp(0.3 * rng.standard_normal(a.shape)).astype(np.float32)
    ),
    stats,
  )
  return {"params": params, "batch_stats": stats}


@pytest.fixture(scope="module")
def rsn():
  """RealSmileNet (lax path), its init variables, and 'trained-like' variables."""
  model = models.build("realsmilenet", conv_impl="lax")
  rng = np.random.default_rng(0)
  x = _frames(rng, 1, 2)
  variables = model.init({"params": _key(0)}, x, np.array([2]), train=False)
  return model, variables, _trained_like(variables, rng)


@pytest.fixture(scope="module")
def padded_batch():
  rng = np.random.default_rng(1)
  videos = [_frames(rng, 1, n)[0] for n in LENGTHS]
  x = np.full((len(LENGTHS), T_PAD, 48, 48, 3), 7.5, np.float32)  # garbage padding
  x[0, 4, 10, 10, 0] = np.nan
  for b, v in enumerate(videos):
    x[b, : len(v)] = v
  return videos, x, np.array(LENGTHS, np.int32)


# ------------------------------------------------------------------------------------------------------ counts
def test_realsmilenet_parameter_counts(rsn):
  _, variables, _ = rsn
  assert models.count_params(variables["params"]) == 5273
  assert models.count_params(variables["batch_stats"]) == 62
  p = variables["params"]
  parts = {
    "ta": 84,
    "encoder": 360,
    "convlstm": 4064,
    "nonlocal": 164,
  }
  for name, n in parts.items():
    assert models.count_params(p[name]) == n, name
  assert models.count_params(p["final_conv"]) + models.count_params(p["final_bn"]) == 350
  assert models.count_params(p["classifier"]) == 251
  # The nn.scan'd ConvLSTM cell owns no variables: the official single gate kernel and bias, nothing else.
  assert {k: v.shape for k, v in p["convlstm"].items()} == {"kernel": (3, 3, 14, 32), "bias": (32,)}


def test_realsmilenet_init(rsn):
  _, variables, _ = rsn
  p = variables["params"]
  ta = np.asarray(p["ta"]["conv"]["kernel"])
  expected = np.zeros((3, 3, 3, 3), np.float32)
  expected[1, 1] = 1.0  # centre of every (in, out) pair
  np.testing.assert_array_equal(ta, expected)
  np.testing.assert_array_equal(p["ta"]["conv"]["bias"], 0.0)
  np.testing.assert_array_equal(p["nonlocal"]["bn"]["scale"], 0.0)
  np.testing.assert_array_equal(p["nonlocal"]["bn"]["bias"], 0.0)
  np.testing.assert_array_equal(p["encoder"]["bn0"]["scale"], 1.0)
  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  for path, fan_in in [
    (("encoder", "conv1"), 27),
    (("encoder", "conv2"), 36),
    (("convlstm",), 126),
    (("final_conv",), 32),
    (("classifier",), 250),
  ]:
    layer = p
    for k in path:
      layer = layer[k]
    bound = 1.0 / np.sqrt(fan_in)
    for leaf in ("kernel", "bias"):
      a = np.asarray(layer[leaf])
      assert np.abs(a).max() <= bound, (path, leaf)
    assert np.abs(np.asarray(layer["kernel"])).max() > 0.5 * bound, path  # not a tiny normal init
  stats = variables["batch_stats"]
  for leaf_path, a in jax.tree_util.tree_leaves_with_path(stats):
    np.testing.assert_array_equal(a, 0.0 if leaf_path[-1].key == "mean" else 1.0)


def test_realsmilenet_forget_bias_moves_only_the_forget_gate_bias(rsn):
  """forget_bias (configs/default.py) adds to the forget-gate slice [8, 16) of the ConvLSTM bias at init; every other
  parameter is the official init drawn from the same key."""
  _, variables, _ = rsn
  model = models.build("realsmilenet", conv_impl="lax", forget_bias=2.0)
  x = _frames(np.random.default_rng(0), 1, 2)
  shifted = model.init({"params": _key(0)}, x, np.array([2]), train=False)["params"]
  base = variables["params"]
  delta = np.asarray(shifted["convlstm"]["bias"]) - np.asarray(base["convlstm"]["bias"])
  np.testing.assert_allclose(delta, np.r_[np.zeros(8), np.full(8, 2.0), np.zeros(16)], atol=1e-6)
  rest = lambda p: {k: v for k, v in p.items() if k != "convlstm"}  # noqa: E731
  jax.tree_util.tree_map(np.testing.assert_array_equal, rest(shifted), rest(base))
  np.testing.assert_array_equal(shifted["convlstm"]["kernel"], base["convlstm"]["kernel"])


def test_other_models_shapes_and_build():
  rng = np.random.default_rng(2)
  fw = models.build("framewise", hidden=7, branch_features=5)
  x = rng.standard_normal((3, 4, 154)).astype(np.float32)
  v = fw.init({"params": _key(0)}, x, np.array([4, 2, 1]), train=False)
  logit, feats = jax.jit(lambda v, x: fw.apply(v, x, np.array([4, 2, 1]), train=False))(v, x)
  assert logit.shape == (3,) and feats.shape == (3, 5)
  assert {k: a.shape for k, a in v["params"]["lstm"].items()} == {
    "kernel_x": (154, 28),
    "kernel_h": (7, 28),
    "bias": (28,),
  }  # paths unchanged by the nn.scan'd cell
  for name, d in (("auwise", 476), ("crossau", 4352)):
    m = models.build(name, {"branch_features": 6, "epochs": 3})  # foreign config keys are ignored
    x = rng.standard_normal((2, d)).astype(np.float32)
    v = m.init({"params": _key(0)}, x, train=False)
    assert models.count_params(v["params"]) == d * 6 + 6 + 2 * 6 + 6 + 1
    logit, feats = jax.jit(lambda v, x, m=m: m.apply(v, x, train=False))(v, x)
    assert logit.shape == (2,) and feats.shape == (2, 6)
  m = models.build_from_config({"name": "fusion"})
  x = rng.standard_normal((2, 700)).astype(np.float32)
  v = m.init({"params": _key(0)}, x, None, train=False)
  assert models.count_params(v["params"]) == 701 and "batch_stats" not in v
  logit, feats = m.apply(v, x, None, train=True)
  assert logit.shape == (2,) and np.array_equal(feats, x)
  assert isinstance(models.build("framewise"), models.FrameWiseNet)
  assert models.build("framewise").hidden == 150
  with pytest.raises(ValueError, match="no option"):
    models.build("auwise", hiden=3)
  with pytest.raises(ValueError, match="unknown model"):
    models.build("resnet")


# -------------------------------------------------------------------------------------------------- masking
@pytest.fixture(scope="module")
def rsn_eval(rsn, padded_batch):
  model, _, var = rsn
  videos, x, lengths = padded_batch
  fwd = jax.jit(lambda v, x, n: model.apply(v, x, n, train=False))
  batch = fwd(var, x, lengths)
  singles = [fwd(var, v[None], np.array([len(v)])) for v in videos]
  return batch, singles


def test_realsmilenet_padded_batch_equals_single_videos(rsn_eval):
  (logit_b, feats_b), singles = rsn_eval
  assert np.all(np.isfinite(logit_b)) and np.all(np.isfinite(feats_b))
  assert feats_b.shape == (len(LENGTHS), 250)
  for b, (logit_1, feats_1) in enumerate(singles):
    np.testing.assert_allclose(logit_b[b], logit_1[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats_b[b], feats_1[0], rtol=1e-5, atol=1e-5)
  # The videos differ, and so must their outputs (the check above is not vacuous).
  assert np.ptp(np.asarray(logit_b)) > 1e-3


def test_realsmilenet_cnhw_path_matches_lax(rsn, rsn_eval, padded_batch):
  _, _, var = rsn
  _, x, lengths = padded_batch
  model = models.build("realsmilenet")
  assert model.conv_impl == "cnhw"  # the default
  logit, feats = jax.jit(lambda v, x, n: model.apply(v, x, n, train=False))(var, x, lengths)
  (logit_lax, feats_lax), _ = rsn_eval
  np.testing.assert_allclose(logit, logit_lax, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(feats, feats_lax, rtol=1e-5, atol=1e-5)


def test_framewise_padded_batch_equals_single_videos():
  rng = np.random.default_rng(3)
  model = models.build("framewise", hidden=9, branch_features=7)
  lengths = (6, 2, 1)
  videos = [rng.standard_normal((n, 154)).astype(np.float32) for n in lengths]
  x = np.full((3, 6, 154), np.nan, np.float32)  # NaN padding must not leak
  for b, v in enumerate(videos):
    x[b, : len(v)] = v
  v0 = model.init({"params": _key(0)}, x[:1], np.array([6]), train=False)
  var = _trained_like(v0, rng)
  fwd = jax.jit(lambda v, x, n: model.apply(v, x, n, train=False))
  logit_b, feats_b = fwd(var, x, np.array(lengths))
  assert np.all(np.isfinite(feats_b))
  for b, v in enumerate(videos):
    logit_1, feats_1 = fwd(var, v[None], np.array([len(v)]))
    np.testing.assert_allclose(logit_b[b], logit_1[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats_b[b], feats_1[0], rtol=1e-5, atol=1e-5)
  assert np.ptp(np.asarray(logit_b)) > 1e-3


@pytest.mark.parametrize("conv_impl", ["lax", "cnhw"])
def test_realsmilenet_train_mode_ignores_padding(rsn, conv_impl):
  """Training mode: the real frames alone decide outputs and BN statistics (no dropout, to compare exactly)."""
  _, variables, var = rsn
  model = models.build("realsmilenet", conv_impl=conv_impl, encoder_dropout=0.0, final_dropout=0.0)
  rng = np.random.default_rng(4)
  x3 = _frames(rng, 2, 3)
  step = jax.jit(lambda v, x, n: model.apply(v, x, n, train=True, mutable=["batch_stats"]))
  (logit_ref, feats_ref), upd_ref = step(var, x3, np.array([3, 3]))

  x5 = np.full((3, 5, 48, 48, 3), -3.0e4, np.float32)  # garbage padding + a dummy (length-0) video
  x5[:2, :3] = x3
  x5[0, 3, 0, 0, 0] = np.inf
  x5[2, 1, 5, 5, 2] = np.nan
  (logit, feats), upd = step(var, x5, np.array([3, 3, 0]))
  np.testing.assert_allclose(logit[:2], logit_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(feats[:2], feats_ref, rtol=1e-5, atol=1e-5)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), upd, upd_ref)

  # And the first BatchNorm's running statistics are PyTorch's update from the real frames only: at init the
  # TA output is x + x * sum_c(D) (kernel centre 1, bias 0).
  (_, _), upd0 = step(variables, x5, np.array([3, 3, 0]))
  x = x3.astype(np.float64)
  d = np.concatenate([np.zeros_like(x[:, :1]), np.diff(x, axis=1)], axis=1)
  ta = x + x * d.sum(-1, keepdims=True)
  vals = ta.reshape(-1, 3)
  n = vals.shape[0]
  bn0 = upd0["batch_stats"]["encoder"]["bn0"]
  np.testing.assert_allclose(bn0["mean"], 0.1 * vals.mean(0), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(bn0["var"], 0.9 + 0.1 * vals.var(0) * n / (n - 1), rtol=1e-5)


def test_realsmilenet_cnhw_training_gradients_match_lax(rsn):
  """The channels-first path's custom gradients (convolutions, channels-first BatchNorm) equal XLA's autodiff of the
  lax path, in training mode with padding."""
  _, _, var = rsn
  rng = np.random.default_rng(8)
  x = _frames(rng, 2, 4)
  lengths = np.array([4, 2])
  w = jnp.asarray(rng.standard_normal((2, 250)).astype(np.float32))

  def make_loss(model, var, x, w):
    def loss(p):
      (logit, feats), _ = model.apply({**var, "params": p}, x, lengths, train=True, mutable=["batch_stats"])
      return jnp.sum(jnp.sin(logit)) + jnp.sum(feats * w)

    return loss

  grads = {}
  for conv_impl in ("lax", "cnhw"):
    model = models.build("realsmilenet", conv_impl=conv_impl, encoder_dropout=0.0, final_dropout=0.0)
    grads[conv_impl] = jax.jit(jax.grad(make_loss(model, var, x, w)))(var["params"])
  # Which gradients are zero in exact arithmetic: the parameters the loss does not depend on at all (a bias just
  # before a training-mode BatchNorm). Moving such a leaf in a random direction leaves the loss unchanged up to rounding, while
  # it moves any other leaf's loss by far more. Their float32 gradients are rounding noise whose size depends on the
  # CPU's instruction set, so they are held only to a noise bound; every other gradient must agree closely.
  lax_loss = jax.jit(
    make_loss(models.build("realsmilenet", conv_impl="lax", encoder_dropout=0.0, final_dropout=0.0), var, x, w)
  )
  base = float(lax_loss(var["params"]))
  paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(var["params"])]

  shift = np.random.default_rng(9)

  def shifted(target):  # the leaf moved in a random direction: a uniform shift would miss per-channel effects
    return jax.tree_util.tree_map_with_path(
      lambda p, a: a + 0.5 * shift.standard_normal(a.shape).astype(np.float32) if p == target else a, var["params"]
    )

  invariant = {p for p in paths if abs(float(lax_loss(shifted(p))) - base) <= 1e-5 * max(1.0, abs(base))}
  assert 0 < len(invariant) < 8, [jax.tree_util.keystr(p) for p in invariant]
  scale = max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads["lax"]))
  assert scale > 1e-3
  leaves = zip(paths, jax.tree_util.tree_leaves(grads["lax"]), jax.tree_util.tree_leaves(grads["cnhw"]))
  for path, a, b in leaves:
    name = jax.tree_util.keystr(path)
    if path in invariant:
      for got in (a, b):
        np.testing.assert_array_less(np.abs(got), 1e-4 * scale, err_msg=name)
    else:
      np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def test_masked_batchnorm_statistics():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 4, 3, 5, 6)).astype(np.float32) * 2.0 + 1.0
  mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
  garbage = x.copy()
  garbage[~mask] = np.nan
  bn = L.MaskedBatchNorm()
  v = bn.init(_key(0), x, mask, use_running_average=False)
  apply = jax.jit(lambda v, x: bn.apply(v, x, mask, use_running_average=False, mutable=["batch_stats"]))
  y, upd = apply(v, garbage)
  real = x[mask].reshape(-1, 6).astype(np.float64)  # H*W*sum(m) entries per channel
  n = real.shape[0]
  assert n == 3 * 5 * 3
  mu, var = real.mean(0), real.var(0)
  np.testing.assert_allclose(np.asarray(y)[mask], ((x[mask] - mu) / np.sqrt(var + 1e-5)), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
  # Channels first (C x B x T x H x W, the mask on the axes after C): the same statistics and outputs.
  bn_cf = L.MaskedBatchNorm(channels_first=True)
  y_cf, upd_cf = jax.jit(lambda v, x: bn_cf.apply(v, x, mask, use_running_average=False, mutable=["batch_stats"]))(
    v, np.moveaxis(garbage, -1, 0)
  )
  np.testing.assert_allclose(np.moveaxis(np.asarray(y_cf), 0, -1)[mask], np.asarray(y)[mask], rtol=1e-5, atol=1e-5)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), upd_cf, upd)
  # Evaluation uses the running statistics.
  v2 = {"params": v["params"], "batch_stats": {"mean": jnp.full(6, 2.0), "var": jnp.full(6, 4.0)}}
  np.testing.assert_allclose(
    bn.apply(v2, x, mask, use_running_average=True), (x - 2.0) / np.sqrt(4.0 + 1e-5), rtol=1e-5, atol=1e-6
  )


# ------------------------------------------------------------------------------------------------- gradients
def test_safe_l2_norm():
  z = jnp.zeros((3, 2))
  assert float(L.safe_l2_norm(z)) == 0.0
  g = jax.grad(L.safe_l2_norm)(z)
  assert np.all(np.isfinite(g)) and np.all(g == 0)
  x = jnp.array([[3.0, 4.0]])
  assert float(L.safe_l2_norm(x)) == pytest.approx(5.0)
  np.testing.assert_allclose(jax.grad(L.safe_l2_norm)(x), [[0.6, 0.8]], rtol=1e-6)
  # The naive norm is NaN there: the trap the safe norm avoids (spec §5).
  assert np.isnan(jax.grad(lambda a: jnp.sqrt(jnp.sum(a * a)))(z)).all()


def test_realsmilenet_loss_gradient_finite_at_init(rsn, padded_batch):
  model, variables, _ = rsn
  _, x, lengths = padded_batch
  y = jnp.array([1.0, 0.0, 1.0])

  def loss_fn(params):
    (logit, _), upd = model.apply(
      {"params": params, "batch_stats": variables["batch_stats"]},
      x,
      lengths,
      train=True,
      rngs={"dropout": _key(3)},
      mutable=["batch_stats"],
    )
    reg = sum(L.safe_l2_norm(w) for w in jax.tree_util.tree_leaves(params))
    return optax.sigmoid_binary_cross_entropy(logit, y).mean() + 0.001 * reg, upd

  (loss, upd), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
  assert np.isfinite(loss)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(g)), path
  for path, s in jax.tree_util.tree_leaves_with_path(upd):
    assert np.all(np.isfinite(s)), path
  # Every parameter tensor receives a gradient (the non-local BN gamma through the data term).
  assert float(jnp.abs(grads["nonlocal"]["bn"]["scale"]).max()) > 0
  assert float(jnp.abs(grads["convlstm"]["kernel"]).max()) > 0
  assert float(jnp.abs(grads["ta"]["conv"]["kernel"]).max()) > 0


def _ref_conv(x, k):
  return jax.lax.conv_general_dilated(
    x.reshape((-1,) + x.shape[-3:]), k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  ).reshape(x.shape[:-1] + (-1,))


@pytest.mark.parametrize("channels_first", [False, True])
def test_conv_same_value_and_gradient(channels_first):
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)).astype(np.float32))
  k = jnp.asarray(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
  w = jnp.asarray(rng.standard_normal((2, 8, 8, 4)).astype(np.float32))

  def ours(x, k):
    if channels_first:
      return jnp.moveaxis(L.conv_same_cf(jnp.moveaxis(x, -1, 0), k), 0, -1)
    return L.conv_same(x, k)

  np.testing.assert_allclose(jax.jit(ours)(x, k), _ref_conv(x, k), rtol=1e-5, atol=1e-5)
  g_ref = jax.grad(lambda x, k: jnp.sum(jnp.sin(_ref_conv(x, k)) * w), (0, 1))(x, k)
  g = jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.sin(ours(x, k)) * w), (0, 1)))(x, k)
  for a, b in zip(g, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels_first,padded", [(False, False), (True, False), (True, True)])
def test_conv_kernel_grad_in_chunks(channels_first, padded):
  """The kernel gradient summed over 1, 2, 3 or 5 chunks of the 30 frames (an odd count of chunks too), from the
  input as it is or (channels-first) already zero-padded."""
  rng = np.random.default_rng(11)
  x = jnp.asarray(rng.standard_normal((5, 6, 7, 9, 3)).astype(np.float32))
  g = jnp.asarray(rng.standard_normal((5, 6, 7, 9, 4)).astype(np.float32))
  ref = jax.grad(lambda k: jnp.sum(_ref_conv(x, k) * g))(jnp.zeros((3, 3, 3, 4), jnp.float32))
  per_frame = 7 * 9 * (9 * 3 + 4) * 4
  if channels_first:
    x, g = jnp.moveaxis(x, -1, 0), jnp.moveaxis(g, -1, 0)
  if padded:
    x = jnp.pad(x, [(0, 0)] * 3 + [(1, 1), (1, 1)])
  for frames_per_chunk in (30, 15, 10, 6):
    dk = L.conv_kernel_grad(
      x, g, 3, channels_first=channels_first, padded=padded, chunk_bytes=frames_per_chunk * per_frame
    )
    np.testing.assert_allclose(dk, ref, rtol=1e-4, atol=1e-4, err_msg=f"{frames_per_chunk} frames per chunk")


def test_masked_conv_lstm_matches_reference_scan():
  """The nn.scan of the custom-gradient cell: values and gradients (gx, kernel) equal a plain lax.scan's autodiff."""
  rng = np.random.default_rng(7)
  t, b = 5, 3
  gx = jnp.asarray(rng.standard_normal((t, b, 6, 6, 32)).astype(np.float32))
  mask = jnp.asarray(np.arange(t)[:, None] < np.array([5, 2, 0])[None])
  kh = jnp.asarray(0.3 * rng.standard_normal((3, 3, 8, 32)).astype(np.float32))
  w = jnp.asarray(rng.standard_normal((b, 6, 6, 8)).astype(np.float32))

  def ref(gx, kh):
    def step(carry, inp):
      c, h = carry
      g, m = inp
      zi, zf, zo, zg = jnp.split(g + _ref_conv(h, kh), 4, -1)
      cn = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
      hn = jax.nn.sigmoid(zo) * jnp.tanh(cn)
      m = m[:, None, None, None]
      return (jnp.where(m, cn, c), jnp.where(m, hn, h)), None

    z = jnp.zeros((b, 6, 6, 8))
    return jax.lax.scan(step, (z, z), (gx, mask))[0][1]

  h = jax.jit(lambda gx, kh: R.masked_conv_lstm(gx, mask, kh))(gx, kh)
  np.testing.assert_allclose(h, jax.jit(ref)(gx, kh), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(h[2], 0.0)  # no real frame: the zero state

  def f(fn):
    return lambda gx, kh: jnp.sum(jnp.cos(fn(gx, kh)) * w)

  g_ref = jax.jit(jax.grad(f(ref), (0, 1)))(gx, kh)
  g = jax.jit(jax.grad(f(lambda gx, kh: R.masked_conv_lstm(gx, mask, kh)), (0, 1)))(gx, kh)
  for a, b_ in zip(g, g_ref):
    np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-5)


def test_fusion_barrier_is_identity():
  x = jnp.arange(6.0).reshape(2, 3)
  tree = {"a": x, "b": [x * 2]}
  out = jax.jit(L.fusion_barrier)(tree)
  np.testing.assert_array_equal(out["a"], x)
  np.testing.assert_array_equal(out["b"][0], x * 2)
  g = jax.grad(lambda x: jnp.sum(L.fusion_barrier(x * x)))(x)
  np.testing.assert_allclose(g, 2 * x)
  nan = jnp.array([np.nan, 1.0])
  np.testing.assert_array_equal(L.fusion_barrier(nan), nan)  # NaN probe: zero trips, still the identity


def test_fusion_barrier_survives_compilation_of_a_padded_map():
  """The barrier is a while loop with a data-dependent trip count; had the probe been a padding zero, XLA would know
  the count and drop the loop (it did, for every convolution's padded input, until the probe moved to the middle)."""
  x = jnp.ones((2, 4, 6, 6))
  hlo = jax.jit(lambda x: L.fusion_barrier(jnp.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])) * 2.0).lower(x).compile()
  assert " while(" in hlo.as_text()


# ---------------------------------------------------------------------------------------- blocks and layers
def test_temporal_attention_at_init():
  rng = np.random.default_rng(8)
  x = rng.random((2, 3, 8, 8, 3), dtype=np.float32)
  ta = R.TemporalAttention()
  v = ta.init(_key(0), x)
  d = np.concatenate([np.zeros_like(x[:, :1]), np.diff(x, axis=1)], axis=1)
  np.testing.assert_allclose(ta.apply(v, x), x + x * d.sum(-1, keepdims=True), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ta.apply(v, x)[:, 0], x[:, 0])  # D = 0 at every video's first frame


def test_nonlocal_block_is_identity_at_init():
  rng = np.random.default_rng(9)
  h = rng.standard_normal((2, 12, 12, 8)).astype(np.float32)
  block = R.NonLocalBlock()
  v = jax.jit(lambda h: block.init(_key(0), h, np.array([True, True]), train=False))(h)
  run = jax.jit(
    lambda v, h, train: block.apply(v, h, np.array([True, True]), train=train, mutable=["batch_stats"])[0],
    static_argnums=2,
  )
  for train in (False, True):
    np.testing.assert_allclose(run(v, h, train), h, rtol=0, atol=0)
  # With a non-zero gamma it is not the identity (the attention path is live).
  v2 = {"params": {**v["params"], "bn": {"scale": jnp.ones(8), "bias": jnp.zeros(8)}}, "batch_stats": v["batch_stats"]}
  assert float(jnp.abs(run(v2, h, False) - h).max()) > 1e-3


def test_pools():
  rng = np.random.default_rng(10)
  x = jnp.asarray(rng.standard_normal((2, 8, 12, 3)).astype(np.float32))
  ref_avg = nn.avg_pool(x, (2, 2), (2, 2))
  np.testing.assert_allclose(L.avg_pool2(x), ref_avg, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(L.avg_pool2_cf(jnp.moveaxis(x, -1, 0)), jnp.moveaxis(ref_avg, -1, 0), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(L.max_pool2(x), nn.max_pool(x, (2, 2), (2, 2)))
