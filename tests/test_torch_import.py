"""Parity of the PyTorch weight import with [O]'s ``org`` model (spec ``realsmilenet.md`` §2 "Layout").

The fixture ``tests/data/realsmilenet_torch_parity.npz`` holds a PyTorch state_dict of [O]'s model (BatchNorm
statistics and affine parameters moved away from their init), a random input and PyTorch's evaluation-mode outputs
on that input fed transposed, as [O] lays out its images; it is written by
``benchmarks/make_torch_parity_fixture.py`` (needs PyTorch; this test does not).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from smilejax import models
from smilejax.errors import InputError
from smilejax.models.torch_import import TORCH_KEYS, realsmilenet_variables_from_torch

FIXTURE = Path(__file__).resolve().parent / "data" / "realsmilenet_torch_parity.npz"


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as z:
    data = {k: z[k] for k in z.files}
  sd = {k[len("sd/") :]: v for k, v in data.items() if k.startswith("sd/")}
  return sd, data


def test_state_dict_keys_are_the_mapped_ones(fixture):
  sd, _ = fixture
  assert sorted(sd) == sorted(TORCH_KEYS)
  assert sum(v.size for k, v in sd.items() if "running" not in k) == 5273
  assert sum(v.size for k, v in sd.items() if "running" in k) == 62


@pytest.mark.parametrize("conv_impl", ["lax", "cnhw"])
def test_imported_weights_reproduce_pytorch_outputs(fixture, conv_impl):
  sd, data = fixture
  variables = realsmilenet_variables_from_torch(sd)
  model = models.build("realsmilenet", conv_impl=conv_impl)
  frames = data["frames_u8_BxTxHxWxC"].astype(np.float32) / np.float32(255.0)
  # The imported tree has exactly the model's structure and shapes.
  ref_shapes = jax.eval_shape(
    lambda: model.init({"params": jax.random.key(0)}, frames[:1, :2], np.array([2]), train=False)
  )
  assert jax.tree_util.tree_structure(ref_shapes) == jax.tree_util.tree_structure(variables)
  for a, b in zip(jax.tree_util.tree_leaves(ref_shapes), jax.tree_util.tree_leaves(variables)):
    assert a.shape == b.shape
  logit, feats = jax.jit(lambda v, x, n: model.apply(v, x, n, train=False))(variables, frames, data["lengths_B"])
  b = frames.shape[0]
  # Our features are flattened over (H, W, C), PyTorch's over (C, W, H) = (10, 5, 5).
  feats_torch = np.asarray(feats).reshape(b, 5, 5, 10).transpose(0, 3, 2, 1).reshape(b, -1)
  np.testing.assert_allclose(feats_torch, data["feats_torch_BxF"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logit, data["logit_B"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.nn.sigmoid(logit), data["prob_B"], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def lax_forward():
  model = models.build("realsmilenet", conv_impl="lax")
  return jax.jit(lambda v, x, n: model.apply(v, x, n, train=False))


def test_fixture_detects_layout_mistakes(fixture, lax_forward):
  """The parity test can fail: kernels without the spatial swap, or the classifier in PyTorch's flatten order,
  give clearly different outputs on this fixture."""
  sd, data = fixture
  frames = data["frames_u8_BxTxHxWxC"].astype(np.float32) / np.float32(255.0)
  good = realsmilenet_variables_from_torch(sd)
  no_swap = jax.tree_util.tree_map_with_path(
    lambda path, a: a.transpose(1, 0, 2, 3) if path[-1].key == "kernel" and a.ndim == 4 and a.shape[0] > 1 else a, good
  )
  torch_order = {
    **good,
    "params": {
      **good["params"],
      "classifier": {"kernel": sd["pool.5.weight"].reshape(250, 1), "bias": sd["pool.5.bias"]},
    },
  }
  ref = np.asarray(lax_forward(good, frames, data["lengths_B"])[0])
  np.testing.assert_allclose(ref, data["logit_B"], rtol=1e-5, atol=1e-5)
  for wrong in (no_swap, torch_order):
    logit = np.asarray(lax_forward(wrong, frames, data["lengths_B"])[0])
    assert np.abs(logit - data["logit_B"]).max() > 1e-3


def test_missing_or_misshaped_key_is_named(fixture):
  sd, _ = fixture
  broken = dict(sd)
  del broken["decoder.cell.conv.weight"]
  with pytest.raises(InputError, match=r"missing key 'decoder\.cell\.conv\.weight'"):
    realsmilenet_variables_from_torch(broken, source="ckpt.pth")
  broken = dict(sd)
  broken["pool.5.weight"] = np.zeros((1, 249), np.float32)
  with pytest.raises(InputError, match=r"ckpt\.pth: key 'pool\.5\.weight' has shape \(1, 249\)"):
    realsmilenet_variables_from_torch(broken, source="ckpt.pth")
  broken = dict(sd)
  broken["pool.0.W.1.running_var"] = -np.ones(8, np.float32)
  with pytest.raises(InputError, match=r"pool\.0\.W\.1\.running_var"):
    realsmilenet_variables_from_torch(broken)
  broken = dict(sd)
  broken["decoder.fcell.conv.weight"] = sd["decoder.cell.conv.weight"]  # e.g. a bidirectional variant
  with pytest.raises(InputError, match=r"unexpected key\(s\) 'decoder\.fcell\.conv\.weight'"):
    realsmilenet_variables_from_torch(broken)
  # DataParallel prefixes and batch counters are accepted.
  wrapped = {f"module.{k}": v for k, v in sd.items()}
  wrapped["module.encoder.0.num_batches_tracked"] = np.array(3)
  out = realsmilenet_variables_from_torch(wrapped)
  np.testing.assert_array_equal(out["params"]["classifier"]["bias"], sd["pool.5.bias"])
