"""Tests of smilejax.train (realsmilenet.md §5-§7): objective, steps, selection, checkpoints and resume.

Small models (VectorNet with 8 branch features, FrameWiseNet with hidden 8) keep compilation to a few seconds; every
test reuses the same compiled steps (train.get_steps caches them by configuration).
"""

from __future__ import annotations

import functools
import json
import math
import runpy
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from smilejax import models, train
from smilejax.errors import InputError
from smilejax.models.layers import safe_l2_norm
from smilejax.train import run as train_run
from smilejax.train import steps as train_steps
from smilejax.train.checkpoints import one_line

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VEC_CFG = {"name": "auwise", "epochs": 3, "standardize": True, "branch_features": 8, "dropout": 0.5}
SEQ_CFG = {"name": "framewise", "epochs": 2, "standardize": True, "hidden": 8, "branch_features": 8}
# The tiny test config's training options (configs/test.py: batch 16, Adam 1e-3, L2 0.001, selection "val"), with
# evaluation batches of 16 and bucket 16 (the outputs do not depend on them) and every epoch checkpointed.
TRAIN_CFG = dict(
  runpy.run_path(str(CONFIGS / "test.py"))["get_config"]().train.to_dict(),
  eval_batch_size=16,
  bucket=16,
  checkpoint_interval_s=0.0,
)

# Loss of the first training step of `_golden_setup()` (VectorNet, seed 0). Recorded with jax 0.10.2 on CPU, with
# jax_threefry_partitionable = False (set by `import smilejax`; it was 0.84976047 with JAX's default random bits).
# It changes legitimately only if the initialisation, the random-bit generator, the objective, the batch order or the
# data recipe change; update it then (and say why in the commit).
GOLDEN_FIRST_LOSS = 0.76144928


def _vector_data(n: int, *, d: int = 12, seed: int, shift: float = 1.0) -> train.Examples:
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  x = rng.normal(size=(n, d)) + shift * (2 * y[:, None] - 1) * (np.arange(d) < 3)
  return train.Examples(x.astype(np.float32), y, tuple(f"v{seed}_{i}" for i in range(n)))


def _seq_data(n: int, *, d: int = 6, seed: int) -> train.Examples:
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  xs = []
  for i in range(n):
    t = int(rng.integers(5, 30))
    a = rng.normal(size=(t, d)) + 0.8 * (2 * y[i] - 1) * (np.arange(d) < 2)
    xs.append(a.astype(np.float32))
  return train.Examples(xs, y, tuple(f"s{seed}_{i}" for i in range(n)))


@pytest.fixture(scope="module")
def vec_data():
  return {"train": _vector_data(40, seed=1), "val": _vector_data(20, seed=2), "test": _vector_data(30, seed=3)}


def _one_batch_state(cfg, ex: train.Examples, *, seed=0):
  tcfg = train.train_options(TRAIN_CFG)
  steps = train.get_steps(cfg["name"], cfg, tcfg)
  std = train.Standardizer.fit(ex.x)
  ex = train.Examples(std.apply(ex.x), ex.y, ex.ids)
  shape = np.shape(ex.x[0])[1:] if ex.sequential else np.shape(ex.x[0])
  state = train.init_state(steps, np.zeros(((1,) + shape) if ex.sequential else shape, np.float32), seed=seed)
  idx = train.epoch_order(len(ex), batch_size=16, seed=seed, epoch=0)[0]
  x, lengths = train.take_batch(ex, idx, bucket=16)
  return steps, state, x, lengths, ex.y[idx].astype(np.float32)


def _golden_setup():
  return _one_batch_state(VEC_CFG, _vector_data(40, seed=1))


def test_first_step_loss_matches_formula_and_golden_value():
  steps, state, x, lengths, y = _golden_setup()
  new_state, m = steps.train_step(state, x, lengths, y, np.ones(16, np.float32))
  # Independent recomputation: same dropout key as the step (fold_in(rng, step=0)), numpy BCE and L2 sum.
  (logit, _), _ = steps.module.apply(
    state.variables,
    jnp.asarray(x),
    jnp.asarray(lengths),
    train=True,
    rngs={"dropout": jax.random.fold_in(state.rng, 0)},
    mutable=["batch_stats"],
  )
  z = np.asarray(logit, np.float64)
  p = 1 / (1 + np.exp(-z))
  bce = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
  l2 = sum(float(np.sqrt(np.sum(np.asarray(w, np.float64) ** 2))) for w in jax.tree_util.tree_leaves(state.params))
  expected = bce + 0.001 * l2
  assert float(m["loss"]) == pytest.approx(expected, rel=1e-5), "train_step loss != BCE + 0.001 * sum ||W||_2"
  assert float(m["bce"]) == pytest.approx(bce, rel=1e-5)
  assert float(m["loss"]) == pytest.approx(GOLDEN_FIRST_LOSS, rel=1e-5), (
    f"first-step loss {float(m['loss']):.8f} differs from the recorded {GOLDEN_FIRST_LOSS}: initialisation, "
    "objective, batch order or data recipe changed (update GOLDEN_FIRST_LOSS if intended)"
  )
  assert int(new_state.step) == 1


def test_safe_l2_has_zero_gradient_at_zero_and_loss_is_finite():
  g = jax.grad(lambda w: safe_l2_norm(w))(jnp.zeros((3, 2)))
  assert np.all(np.asarray(g) == 0)
  assert float(train_steps.l2_penalty({"a": jnp.ones((2, 2)), "b": jnp.zeros(3)})) == pytest.approx(2.0)


@pytest.mark.parametrize(
  "cfg,make", [(VEC_CFG, lambda: _vector_data(40, seed=1)), (SEQ_CFG, lambda: _seq_data(40, seed=4))]
)
def test_one_step_changes_every_trainable_leaf_and_batch_stats(cfg, make):
  steps, state, x, lengths, y = _one_batch_state(cfg, make())
  new_state, _ = steps.train_step(state, x, lengths, y, np.ones(16, np.float32))
  flat_old = jax.tree_util.tree_leaves_with_path(state.params)
  flat_new = jax.tree_util.tree_leaves(new_state.params)
  unchanged = [jax.tree_util.keystr(p) for (p, a), b in zip(flat_old, flat_new) if np.array_equal(a, b)]
  assert not unchanged, f"parameters not updated by one step: {unchanged}"
  stats_old = jax.tree_util.tree_leaves(state.batch_stats)
  stats_new = jax.tree_util.tree_leaves(new_state.batch_stats)
  assert stats_old and all(not np.array_equal(a, b) for a, b in zip(stats_old, stats_new))


def test_epoch_order_covers_every_example_with_static_batches():
  for n in (5, 16, 33, 40):
    order = train.epoch_order(n, batch_size=16, seed=3, epoch=2)
    assert order.shape == (math.ceil(n / 16), 16)
    assert set(order.ravel().tolist()) == set(range(n))
    perm = np.random.default_rng([3, 2]).permutation(n)
    assert np.array_equal(order.ravel()[:n], perm)  # the epoch's permutation, then the cyclic fill
  assert not np.array_equal(
    train.epoch_order(40, batch_size=16, seed=3, epoch=0), train.epoch_order(40, batch_size=16, seed=3, epoch=1)
  )


def test_standardizer_uses_training_rows_and_keeps_constant_features():
  x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0]])
  s = train.Standardizer.fit(x)
  np.testing.assert_allclose(s.mean, [2.0, 5.0, 3.0])
  np.testing.assert_allclose(s.std, [1.0, 1.0, 1.0])  # column 1 is constant: std := 1
  seq = train.Standardizer.fit([np.zeros((2, 2)), np.ones((2, 2)) * 2])
  np.testing.assert_allclose(seq.mean, [1.0, 1.0])
  assert np.all(np.isfinite(s.apply(np.array([[0.0, 5.0, 0.0]]))))


def test_selection_prefers_accuracy_then_loss_then_earlier_epoch():
  recs = [
    {"epoch": 1, "val_acc": 0.8, "val_loss": 0.5},
    {"epoch": 2, "val_acc": 0.9, "val_loss": 0.6},
    {"epoch": 3, "val_acc": 0.9, "val_loss": 0.4},
    {"epoch": 4, "val_acc": 0.9, "val_loss": 0.4},
  ]
  assert train.select_epoch(recs, "val") == 3
  assert train.select_epoch(recs, "fixed") == 4


def test_learns_separable_problem(tmp_path):
  data = {
    "train": _vector_data(64, seed=11, shift=3.0),
    "val": _vector_data(16, seed=12, shift=3.0),
    "test": _vector_data(64, seed=13, shift=3.0),
  }
  # lr 0.01 and no dropout: "a few steps" (8 epochs of 4 batches); the loop, not the paper's settings, is tested.
  r = train.fit(
    "auwise", dict(VEC_CFG, epochs=8, dropout=0.0), dict(TRAIN_CFG, learning_rate=0.01), data, tmp_path / "m"
  )
  assert r.test_acc >= 0.95, f"test accuracy {r.test_acc} on a separable problem after 32 steps"
  assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]


def test_test_split_is_not_used_for_selection(tmp_path, vec_data):
  a = train.fit("auwise", VEC_CFG, TRAIN_CFG, vec_data, tmp_path / "a")
  flipped = dict(vec_data, test=train.Examples(vec_data["test"].x, 1 - vec_data["test"].y, vec_data["test"].ids))
  b = train.fit("auwise", VEC_CFG, TRAIN_CFG, flipped, tmp_path / "b")
  assert a.selected_epoch == b.selected_epoch
  np.testing.assert_array_equal(a.test_prob, b.test_prob)
  assert a.test_acc == pytest.approx(1 - b.test_acc)


class _Interrupt(Exception):
  pass


@pytest.mark.parametrize(
  "cfg,make,interval",
  [(VEC_CFG, None, 0.0), (SEQ_CFG, lambda s: _seq_data(24, seed=s), 0.0), (dict(VEC_CFG, epochs=4), None, 1e9)],
)
def test_resume_after_interruption_gives_identical_result(tmp_path, vec_data, cfg, make, interval):
  """Kill after epoch 2, resume. interval 1e9: only new bests and the last epoch are saved, so the resumed run
  restarts from an earlier epoch (or from scratch) and must still end identically."""
  data = vec_data if make is None else {"train": make(20), "val": make(21), "test": make(22)}
  tcfg = dict(TRAIN_CFG, checkpoint_interval_s=interval)
  full = train.fit("m", cfg, tcfg, data, tmp_path / "full")

  def stop(epoch, record):
    if epoch == 2:
      raise _Interrupt()

  with pytest.raises(_Interrupt):
    train.fit("m", cfg, tcfg, data, tmp_path / "resumed", epoch_callback=stop)
  assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 2
  resumed = train.fit("m", cfg, tcfg, data, tmp_path / "resumed")

  strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
  assert strip(resumed.history) == strip(full.history)
  assert resumed.selected_epoch == full.selected_epoch
  np.testing.assert_array_equal(resumed.test_prob, full.test_prob)
  for a, b in zip(jax.tree_util.tree_leaves(resumed.variables), jax.tree_util.tree_leaves(full.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["epoch"] for line in lines] == list(range(1, cfg["epochs"] + 1))


def test_load_trained_reproduces_selected_model(tmp_path, vec_data):
  r = train.fit("auwise", VEC_CFG, TRAIN_CFG, vec_data, tmp_path / "m")
  m = train.load_trained(tmp_path / "m")
  assert m.selected_epoch == r.selected_epoch
  assert m.standardizer is not None
  prob, feats = m.predict(vec_data["test"].x, np.ones(len(vec_data["test"]), np.int32))
  np.testing.assert_allclose(prob, r.test_prob, rtol=1e-6, atol=1e-7)
  assert feats.shape == (len(vec_data["test"]), 8)
  kept = sorted(int(p.name) for p in (tmp_path / "m" / "checkpoints").iterdir() if p.name.isdigit())
  assert kept == sorted({r.selected_epoch, r.epochs}), "checkpoints kept: the latest and the best"


def test_nan_loss_aborts_naming_model_step_and_epoch(tmp_path, vec_data):
  bad_x = vec_data["train"].x.copy()
  bad = 7
  bad_x[bad, 0] = np.nan
  data = dict(vec_data, train=train.Examples(bad_x, vec_data["train"].y, vec_data["train"].ids))
  cfg = dict(VEC_CFG, standardize=False)
  order = train.epoch_order(len(bad_x), batch_size=16, seed=0, epoch=0)
  step = int(np.argwhere((order == bad).any(axis=1))[0, 0]) + 1
  with pytest.raises(FloatingPointError, match=rf"nanmodel: non-finite training loss .* at step {step} \(epoch 1\)"):
    train.fit("nanmodel", cfg, TRAIN_CFG, data, tmp_path / "m")


def test_broken_checkpoint_is_one_line_input_error_naming_directory(tmp_path, vec_data):
  train.fit("auwise", dict(VEC_CFG, epochs=2), TRAIN_CFG, vec_data, tmp_path / "m")
  ckpt = tmp_path / "m" / "checkpoints"
  for f in ckpt.rglob("*"):
    if f.is_file() and f.parent.name != "metrics":
      f.write_bytes(b"garbage")
  with pytest.raises(InputError) as err:
    train.load_trained(tmp_path / "m")
  assert str(ckpt) in str(err.value) and "\n" not in str(err.value)
  with pytest.raises(InputError) as err:  # resuming the run meets the same broken checkpoint
    train.fit("auwise", dict(VEC_CFG, epochs=2), TRAIN_CFG, vec_data, tmp_path / "m")
  assert str(ckpt) in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_error_text_is_whole_and_on_one_line():
  text = "DATA_LOSS: Error reading " + "x" * 300 + "\n in OCDBT database: end of the message"
  line = one_line(ValueError(text))
  assert line.startswith("ValueError: DATA_LOSS") and line.endswith("end of the message") and "\n" not in line


# A damaged file of the newest checkpoint: a truncated OCDBT manifest or array metadata, a garbled history.
_DAMAGES = {
  "truncated manifest": ("state/manifest.ocdbt", lambda b: b[: len(b) // 2]),
  "truncated metadata": ("state/_METADATA", lambda b: b[: len(b) // 2]),
  "garbled history": ("history/metadata", lambda b: b"{garbage" + b[8:]),
}


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # no asyncio tracebacks
@pytest.mark.parametrize("damage", list(_DAMAGES))
def test_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path, vec_data, damage, caplog):
  """Epochs 1 and 2 checkpointed, epoch 2's damaged: the run resumes from epoch 1, says so in one line, and ends
  exactly as the uninterrupted run."""
  cfg = dict(VEC_CFG, epochs=3)
  full = train.fit("m", cfg, TRAIN_CFG, vec_data, tmp_path / "full")

  def stop_after(k):
    def stop(epoch, record):
      if epoch == k:
        raise _Interrupt()

    return stop

  model_dir, ckpt = tmp_path / "m", tmp_path / "m" / "checkpoints"
  with pytest.raises(_Interrupt):
    train.fit("m", cfg, TRAIN_CFG, vec_data, model_dir, epoch_callback=stop_after(1))
  shutil.copytree(ckpt / "1", tmp_path / "epoch1")
  with pytest.raises(_Interrupt):
    train.fit("m", cfg, TRAIN_CFG, vec_data, model_dir, epoch_callback=stop_after(2))
  if not (ckpt / "1").exists():  # the keep policy dropped it (epoch 2 the better one): put it back
    shutil.copytree(tmp_path / "epoch1", ckpt / "1")
  name, damage_fn = _DAMAGES[damage]
  (ckpt / "2" / name).write_bytes(damage_fn((ckpt / "2" / name).read_bytes()))

  with caplog.at_level("WARNING"):
    resumed = train.fit("m", cfg, TRAIN_CFG, vec_data, model_dir)
  said = [r.getMessage() for r in caplog.records if "does not restore" in r.getMessage()]
  assert len(said) == 1 and "\n" not in said[0], said
  assert f"{ckpt}: epoch 2 does not restore" in said[0] and "resuming from the checkpoint of epoch 1" in said[0]
  strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
  assert strip(resumed.history) == strip(full.history)
  np.testing.assert_array_equal(resumed.test_prob, full.test_prob)
  lines = (model_dir / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
  assert train.load_trained(model_dir).selected_epoch == full.selected_epoch


def test_model_dir_with_other_config_is_refused(tmp_path, vec_data):
  train.fit("auwise", dict(VEC_CFG, epochs=1), TRAIN_CFG, vec_data, tmp_path / "m")
  with pytest.raises(InputError, match="another configuration"):
    train.fit("auwise", dict(VEC_CFG, epochs=1, dropout=0.1), TRAIN_CFG, vec_data, tmp_path / "m")


def test_a_run_that_failed_before_its_first_checkpoint_does_not_lock_its_folder(tmp_path, vec_data, monkeypatch):
  """A run that crashes in its first epoch (e.g. on a bad value) saved nothing: the folder takes another config."""

  def crash(*args, **kwargs):
    raise ZeroDivisionError("injected crash in the first epoch")

  monkeypatch.setattr(train_run, "_train_epoch", crash)
  with pytest.raises(ZeroDivisionError):
    train.fit("auwise", dict(VEC_CFG, epochs=1, dropout=0.1), TRAIN_CFG, vec_data, tmp_path / "m")
  monkeypatch.undo()
  r = train.fit("auwise", dict(VEC_CFG, epochs=1), TRAIN_CFG, vec_data, tmp_path / "m")
  assert r.epochs == 1 and json.loads((tmp_path / "m" / "config.json").read_text())["model"]["dropout"] == 0.5


def test_fixed_selection_trains_all_epochs_without_validation(tmp_path, vec_data):
  r = train.fit("auwise", VEC_CFG, dict(TRAIN_CFG, selection="fixed"), dict(vec_data, val=None), tmp_path / "m")
  assert r.selected_epoch == VEC_CFG["epochs"] and r.val_acc is None
  assert all(rec["val_acc"] is None for rec in r.history)


def test_train_config_missing_a_key_is_refused_naming_it(tmp_path, vec_data):
  """configs/__init__.py is the one home of the training options: a config without one is an error, not a default."""
  partial = {k: v for k, v in TRAIN_CFG.items() if k not in ("eval_batch_size", "data_parallel")}
  with pytest.raises(ValueError, match="fit: the train config lacks eval_batch_size, data_parallel"):
    train.fit("auwise", VEC_CFG, partial, vec_data, tmp_path / "m")
  assert not (tmp_path / "m").exists()
  with pytest.raises(ValueError, match="get_steps: the train config lacks data_parallel"):
    train.get_steps("auwise", VEC_CFG, partial)


def test_fusion_trains_only_the_head_and_leaves_encoders_unchanged(tmp_path, vec_data):
  enc = train.fit("auwise", VEC_CFG, TRAIN_CFG, vec_data, tmp_path / "enc", feature_splits=("train", "val", "test"))
  before = [np.array(a) for a in jax.tree_util.tree_leaves(enc.variables)]
  files_before = {p: p.read_bytes() for p in (tmp_path / "enc").rglob("*") if p.is_file()}
  fdata = {k: train.Examples(enc.features[k], vec_data[k].y, vec_data[k].ids) for k in ("train", "val", "test")}
  head = train.fit("fusion_x", {"name": "fusion", "epochs": 2}, TRAIN_CFG, fdata, tmp_path / "fusion")
  # The optimiser and the parameters cover only the Dense(1) head on the F = 8 concatenated features.
  shapes = sorted(np.shape(a) for a in jax.tree_util.tree_leaves(head.variables["params"]))
  assert shapes == [(1,), (8, 1)]
  assert "batch_stats" not in head.variables
  after = [np.array(a) for a in jax.tree_util.tree_leaves(enc.variables)]
  assert all(np.array_equal(a, b) for a, b in zip(before, after))
  assert files_before == {p: p.read_bytes() for p in (tmp_path / "enc").rglob("*") if p.is_file()}
  m = train.load_trained(tmp_path / "fusion")
  prob, _ = m.predict(fdata["test"].x, np.ones(len(fdata["test"]), np.int32))
  np.testing.assert_allclose(prob, head.test_prob, rtol=1e-6, atol=1e-7)


def test_eval_is_independent_of_batch_composition(tmp_path):
  data = {"train": _seq_data(20, seed=31), "val": _seq_data(10, seed=32), "test": _seq_data(19, seed=33)}
  r = train.fit("framewise", SEQ_CFG, TRAIN_CFG, data, tmp_path / "m")
  one = [
    train.predict(
      r.steps, r.variables, train.Examples([x], [y]), batch_size=16, bucket=16, standardizer=r.standardizer
    )[0]
    for x, y in zip(data["test"].x, data["test"].y)
  ]
  np.testing.assert_allclose(train.sigmoid(np.array(one)), r.test_prob, rtol=1e-5, atol=1e-6)


@pytest.mark.benchmark  # slow (one RealSmileNet compilation + 90 steps; benchmarks/README.md): `pytest -m benchmark`
def test_realsmilenet_learns_a_separable_pixel_problem(tmp_path):
  """RealSmileNet with the paper's settings (Adam 1e-3, batch 16, dropout, BatchNorm momentum 0.1) learns to tell a
  fast-rising dark bar from a slow one (16 frames, 96 training videos) within 15 epochs."""
  config = runpy.run_path(str(CONFIGS / "__init__.py"))["paper_config"]()
  model_cfg = dict(config.models.realsmilenet.to_dict(), epochs=15)
  train_cfg = dict(config.train.to_dict(), checkpoint_interval_s=1e9)
  rng = np.random.default_rng(0)

  def video(label):
    frames = rng.normal(0.6, 0.02, (16, 48, 48, 3)).astype(np.float32)
    speed = 3.0 if label == 0 else 1.0  # rows per frame: posed-like fast rise vs spontaneous-like slow rise
    for k in range(16):
      top = int(40 - min(k * speed, 24))
      frames[k, top : top + 3, 14:34] = 0.2
    return frames

  def examples(n):
    y = rng.integers(0, 2, n)
    return train.Examples([video(label) for label in y], y)

  data = {"train": examples(96), "val": examples(32), "test": examples(64)}
  r = train.fit("realsmilenet", model_cfg, train_cfg, data, tmp_path / "rsn")
  assert r.test_acc >= 0.95, f"RealSmileNet test accuracy {r.test_acc} on a separable pixel problem: {r.history}"


# --------------------------------------------------------------------------------------------- data parallelism


def test_data_parallel_devices_divides_the_batch():
  assert train.data_parallel_devices(0, 16, 2) == 2  # 0 = all available
  assert train.data_parallel_devices(0, 16, 6) == 4  # largest divisor of 16 not above 6
  assert train.data_parallel_devices(8, 16, 2) == 2  # capped by the devices there are
  assert train.data_parallel_devices(1, 16, 8) == 1  # 1 = off
  assert train.data_parallel_devices(0, 3, 8) == 3  # never more devices than examples


def test_data_parallel_step_equals_one_device_step():
  """RealSmileNet's training step split over 2 devices (BatchNorm statistics summed over them, per-video dropout
  masks) gives the one-device step: loss, gradient and running statistics up to float32 summation order. Dropout
  is on, the batch has padded frames and a length-0 dummy, and the non-local block is switched on (its BatchNorm
  scale starts at 0), so every statistic that couples the videos is exercised."""
  if jax.local_device_count() < 2:
    pytest.skip("needs 2 JAX devices (tests/conftest.py presents the CPU as 2 before JAX starts)")
  module = models.build("realsmilenet")
  sgd = optax.sgd(1.0)  # new params = params - gradient: the step's gradient is what is compared
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (4, 8, 48, 48, 3), dtype=np.uint8)
  lengths = np.array([8, 5, 0, 3], np.int32)
  y, w = np.array([1, 0, 1, 0], np.float32), np.ones(4, np.float32)
  params, batch_stats, _ = jax.jit(functools.partial(train_steps.init_variables, module=module, tx=sgd))(
    jax.random.PRNGKey(0), x[:1], lengths[:1]
  )
  params = jax.tree_util.tree_map_with_path(
    lambda p, a: a + 1.0 if "'nonlocal'" in jax.tree_util.keystr(p) and "'scale'" in jax.tree_util.keystr(p) else a,
    params,
  )
  state = train_steps.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    opt_state=sgd.init(params),
    rng=jax.random.PRNGKey(1),
  )
  axis = train_steps.BATCH_AXIS
  mesh = Mesh(np.array(jax.local_devices()[:2]), (axis,))
  one = jax.jit(functools.partial(train_steps.train_step, module=module, tx=sgd, l2_weight=1e-3))
  two = jax.jit(
    functools.partial(
      train_steps.train_step, module=module.clone(batch_axis_name=axis), tx=sgd, l2_weight=1e-3, mesh=mesh
    )
  )
  s1, m1 = one(state, x, lengths, y, w)
  s2, m2 = two(jax.device_put(state, NamedSharding(mesh, PartitionSpec())), x, lengths, y, w)
  assert float(m2["loss"]) == pytest.approx(float(m1["loss"]), rel=1e-6)
  g1, g2 = (
    jax.tree_util.tree_map(lambda a, b: np.asarray(a) - np.asarray(b), state.params, s.params) for s in (s1, s2)
  )
  # A bias right before a training-mode BatchNorm does not change the data loss at all, so its data gradient is zero
  # in exact arithmetic and its computed value float32 noise whose size depends on the CPU: such leaves (found by
  # shifting each leaf in a random direction) are held to the L2 term's gradient plus a noise bound; all others are compared closely.
  key = jax.random.fold_in(state.rng, state.step)

  @jax.jit
  def data_loss(p):
    (logit, _), _ = module.apply(
      {"params": p, "batch_stats": batch_stats},
      train_steps.prepare_input(x),
      lengths,
      train=True,
      rngs={"dropout": key},
      mutable=["batch_stats"],
    )
    return jnp.sum(w * train_steps.bce_with_logits(logit, y)) / jnp.sum(w)

  base = float(data_loss(params))
  paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  shift = np.random.default_rng(1)

  def shifted(target):  # the leaf moved in a random direction: a uniform shift would miss per-channel effects
    return jax.tree_util.tree_map_with_path(
      lambda q, a: a + 0.5 * shift.standard_normal(a.shape).astype(np.float32) if q == target else a, params
    )

  invariant = {p for p in paths if abs(float(data_loss(shifted(p))) - base) <= 1e-5 * max(1.0, abs(base))}
  assert 0 < len(invariant) < 8, [jax.tree_util.keystr(p) for p in invariant]
  l2_grad = jax.grad(lambda p: 1e-3 * train_steps.l2_penalty(p))(params)
  scale = max(float(np.max(np.abs(g))) for g in jax.tree_util.tree_leaves(g1))
  for path, a, b, reg in zip(
    paths, jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), jax.tree_util.tree_leaves(l2_grad)
  ):
    name = f"gradient {jax.tree_util.keystr(path)}"
    if path in invariant:
      for got in (a, b):
        np.testing.assert_array_less(np.abs(got - np.asarray(reg)), 1e-2 * scale, err_msg=name)
    else:
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * scale, err_msg=name)
  for (path, a), b in zip(
    jax.tree_util.tree_leaves_with_path(s1.batch_stats), jax.tree_util.tree_leaves(s2.batch_stats)
  ):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"running statistic {jax.tree_util.keystr(path)}")
