"""End-to-end tests of smilejax.experiment on the synthetic tiny corpus (configs/test.py, fewer epochs).

One fold is trained once per module (``fold1`` fixture); the other tests reuse its workdir or the compiled steps
(same process), so the module costs one RealSmileNet compilation.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from smilejax import experiment, extract, methods, sequences, train
from smilejax import prepare as prepare_lib
from smilejax.errors import InputError
from smilejax.io import auda_package, nemo

REPO = Path(__file__).resolve().parents[1]
RESULT_KEYS = {
  "fold",
  "accuracy",
  "ms_per_video",
  "n_test",
  "n_train",
  "n_val",
  "no_smile_detected",
  "selected_epoch",
  "backend",
  "dataset",
  "seed",
  "wall_s",
}


def _load_config(name: str):
  spec = importlib.util.spec_from_file_location(f"cfg_{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  c = _load_config("test")
  c.data.synthetic_dir = str(tmp_path_factory.mktemp("corpus") / "tiny")
  c.folds = (1, 2)
  c.models.realsmilenet.epochs = 1
  c.timing.max_videos = 2
  return c


@pytest.fixture(scope="module")
def fold1(config, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("wd1")
  experiment.check_workdir(config, workdir, folds=[1])
  result = experiment.run_fold(config, workdir, 1)
  return workdir, result


def _read_predictions(path: Path) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_run_fold_end_to_end(config, fold1):
  workdir, result = fold1
  fdir = workdir / "fold_01"
  on_disk = json.loads((fdir / "fold_result.json").read_text())
  assert on_disk == json.loads(json.dumps(result))
  assert set(on_disk) == RESULT_KEYS
  assert set(on_disk["accuracy"]) == set(methods.METHODS) == set(on_disk["ms_per_video"])
  assert on_disk["dataset"] == "synthetic" and on_disk["fold"] == 1 and on_disk["seed"] == 0
  assert all(v > 0 for v in on_disk["ms_per_video"].values())
  for m in methods.METHODS:
    assert 1 <= on_disk["selected_epoch"][m] <= config.models[m].epochs
    assert (fdir / m / "metrics.jsonl").is_file() and (fdir / m / "config.json").is_file()
  for m in methods.AUDA_METHODS:
    assert (fdir / m / "standardizer.npz").is_file()

  prepared = prepare_lib.prepare(config)
  split = prepared.corpus.split(1, val_fraction=config.train.val_fraction, seed=config.seed)
  assert on_disk["n_test"] == len(split.test_ids) and on_disk["n_val"] == len(split.val_ids) > 0
  assert not set(split.test_ids) & (set(split.train_ids) | set(split.val_ids))

  rows = _read_predictions(fdir / "predictions.csv")
  assert list(rows[0]) == ["id", "subject", "label", "fold", *methods.METHODS]
  assert [r["id"] for r in rows] == list(split.test_ids)
  labels = np.array([int(r["label"]) for r in rows])
  assert np.array_equal(labels, prepared.corpus.labels(split.test_ids))
  for m in methods.METHODS:
    p = np.array([float(r[m]) for r in rows])
    assert np.all((p >= 0) & (p <= 1))
    assert np.mean((p > 0.5) == (labels == 1)) == pytest.approx(on_disk["accuracy"][m], abs=1e-9), m

  # Fusion heads: a single Dense(1) on 450 / 700 frozen features (realsmilenet.md §7).
  for m, width in (("fusion_auda", 450), ("fusion_all", 700)):
    head = train.load_trained(fdir / m)
    shapes = sorted(np.shape(a) for a in jax.tree_util.tree_leaves(head.variables["params"]))
    assert shapes == [(1,), (width, 1)], m
  # The fold's test probability of a trained model equals a fresh batch-1 prediction from its checkpoint.
  rsn = train.load_trained(fdir / "realsmilenet")
  vid = split.test_ids[0]
  x, lengths = sequences.pad_to_bucket([prepared.frames[vid]], bucket=config.train.bucket)
  prob, feats = rsn.predict(x, lengths)
  assert float(prob[0]) == pytest.approx(float(rows[0]["realsmilenet"]), abs=2e-6)
  assert feats.shape == (1, 250)


def test_frame_wise_features_follow_the_frame_sampling(config, fold1):
  prepared = prepare_lib.prepare(config)
  vid = next(iter(prepared.corpus.videos))
  v = prepared.corpus.videos[vid]
  idx = prepared.frame_indices[vid]
  assert len(idx) == len(prepared.frames[vid]) == len(prepared.framewise[vid])
  assert np.array_equal(idx[:3], [0, 5, 10])  # every 5th frame at 50 fps
  np.testing.assert_allclose(prepared.framewise[vid][:, :17], v.au_TxA[idx], atol=1e-5)  # block 0 = AU values
  assert prepared.auwise[vid].shape == (476,) and prepared.crossau[vid].shape == (4352,)


def test_kill_and_resume_run_all_folds(config, fold1, tmp_path, monkeypatch):
  workdir = tmp_path / "wd"
  original = experiment.fit_method

  def interrupting(cfg, prepared, fold, method, *args, **kwargs):
    if fold == 2 and method == "framewise":
      raise KeyboardInterrupt("simulated kill")
    return original(cfg, prepared, fold, method, *args, **kwargs)

  monkeypatch.setattr(experiment, "fit_method", interrupting)
  with pytest.raises(KeyboardInterrupt):
    experiment.run_all_folds(config, workdir, [1, 2])
  monkeypatch.setattr(experiment, "fit_method", original)

  f1 = workdir / "fold_01"
  assert (f1 / "fold_result.json").is_file() and not (workdir / "fold_02" / "fold_result.json").exists()
  # Same seed, same config: fold 1 is identical to the one trained by the fixture (stable table).
  a = json.loads((f1 / "fold_result.json").read_text())
  b = fold1[1]
  assert a["accuracy"] == b["accuracy"] and a["selected_epoch"] == b["selected_epoch"]
  assert (f1 / "predictions.csv").read_bytes() == (fold1[0] / "fold_01" / "predictions.csv").read_bytes()

  watched = [f1 / "fold_result.json", f1 / "predictions.csv", f1 / "realsmilenet" / "metrics.jsonl"]
  before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in watched}
  rsn2 = workdir / "fold_02" / "realsmilenet" / "metrics.jsonl"
  rsn2_before = rsn2.read_text()  # trained before the kill; must be resumed, not retrained
  (workdir / "fold_02" / "FAILED").write_text("an earlier failure\n")

  summary = experiment.run_all_folds(config, workdir, [1, 2])
  assert summary.skipped == [1] and summary.done == [2] and summary.ok
  assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in watched} == before
  assert rsn2.read_text() == rsn2_before
  assert (workdir / "fold_02" / "fold_result.json").is_file()
  assert not (workdir / "fold_02" / "FAILED").exists()
  assert (workdir / "results.md").is_file() and summary.table


def test_failing_fold_keeps_the_others_and_is_reported_missing(config, fold1, tmp_path, monkeypatch):
  workdir = tmp_path / "wd"
  shutil.copytree(fold1[0], workdir)
  original = experiment.run_fold

  def failing(cfg, wd, fold):
    if fold == 2:
      raise RuntimeError("injected failure\nsecond line")
    return original(cfg, wd, fold)

  monkeypatch.setattr(experiment, "run_fold", failing)
  summary = experiment.run_all_folds(config, workdir, [1, 2])
  assert summary.skipped == [1] and list(summary.failed) == [2] and not summary.ok
  failed = (workdir / "fold_02" / "FAILED").read_text()
  assert failed.count("\n") == 1 and "injected failure" in failed
  assert (workdir / "fold_01" / "fold_result.json").read_bytes() == (
    fold1[0] / "fold_01" / "fold_result.json"
  ).read_bytes()
  md = (workdir / "results.md").read_text()
  assert "1/2 folds" in md, "the report must say the average covers 1 of 2 folds"


def test_failed_rerun_of_a_finished_fold_keeps_its_results(config, fold1, tmp_path, monkeypatch):
  """A rerun that fails late (here in the per-video timing, after every model is restored and tested) leaves the
  finished fold's predictions.csv and fold_result.json byte for byte, and no temporary file."""
  workdir = tmp_path / "wd"
  shutil.copytree(fold1[0], workdir)
  fdir = workdir / "fold_01"
  before = {p.name: p.read_bytes() for p in fdir.iterdir() if p.is_file()}
  assert set(before) == {"fold_result.json", "predictions.csv"}

  def failing(*args, **kwargs):
    raise RuntimeError("injected failure")

  monkeypatch.setattr(experiment.timing, "time_methods", failing)
  with pytest.raises(RuntimeError, match="injected failure"):
    experiment.run_fold(config, workdir, 1)
  assert {p.name: p.read_bytes() for p in fdir.iterdir() if p.is_file()} == before


def test_workdir_with_another_config_is_refused(config, tmp_path):
  workdir = tmp_path / "wd"
  experiment.check_workdir(config, workdir, folds=[1])
  (workdir / "fold_01").mkdir()
  (workdir / "fold_01" / "fold_result.json").write_text("{}\n")  # a finished fold
  other = config.copy_and_resolve_references()
  other.train.l2_weight = 0.01
  with pytest.raises(InputError, match="another configuration.*train.l2_weight"):
    experiment.check_workdir(other, workdir, folds=[1])
  timing_only = config.copy_and_resolve_references()
  timing_only.timing.max_videos = 7
  experiment.check_workdir(timing_only, workdir, folds=[2])  # timing does not change results
  assert json.loads((workdir / "config.json").read_text())["folds"] == [1, 2]
  experiment.check_workdir(other, workdir, folds=[1], overwrite=True)
  assert not (workdir / "fold_01").exists()
  # A run that failed before its first checkpoint (a model folder with its config.json only) locks nothing.
  failed_early = tmp_path / "failed_early"
  experiment.check_workdir(config, failed_early, folds=[1])
  (failed_early / "fold_01" / "auwise").mkdir(parents=True)
  (failed_early / "fold_01" / "auwise" / "config.json").write_text("{}\n")
  experiment.check_workdir(other, failed_early, folds=[1])
  assert json.loads((failed_early / "config.json").read_text())["train"]["l2_weight"] == 0.01


@pytest.mark.parametrize(
  "key,value,message",
  [
    ("train.batch_size", 0, "config train.batch_size: must be an integer >= 1, got 0"),
    ("train.val_fraction", 1.5, r"config train.val_fraction: must be a finite number in \(0, 1\), got 1.5"),
    ("train.learning_rate", float("nan"), "config train.learning_rate: must be a finite number > 0, got nan"),
    ("train.data_parallel", -1, "config train.data_parallel: must be an integer >= 0, got -1"),
    ("models.auwise.epochs", 0, "config models.auwise.epochs: must be an integer >= 1, got 0"),
    ("data.frame_size", 0, "config data.frame_size: must be an integer >= 1, got 0"),
    ("data.synthetic_size", "huge", "config data.synthetic_size: must be one of default, tiny, uvanemo, got 'huge'"),
    ("timing.max_videos", -2, "config timing.max_videos: must be an integer >= 0, got -2"),
  ],
)
def test_bad_config_values_are_one_line_errors_naming_the_key(key, value, message):
  c = _load_config("test")
  section, name = key.rsplit(".", 1)
  holder = c
  for part in section.split("."):
    holder = holder[part]
  with holder.ignore_type():
    holder[name] = value
  with pytest.raises(InputError, match=message):
    experiment.validate_config(c)


@pytest.mark.parametrize("name", ["default", "test", "uvanemo", "auda_package"])
def test_shipped_configs_pass_the_value_checks(name):
  c = _load_config(name)
  c.data.root = "/some/corpus" if c.data.require_root else c.data.root
  experiment.validate_config(c)


def test_extract_features_matches_experiment_features(config, fold1, tmp_path):
  out = tmp_path / "feats.npz"
  pkg = tmp_path / "pkg"
  extract.extract_features(config, out, package_dir=str(pkg))
  prepared = prepare_lib.prepare(config)
  with np.load(out) as z:
    ids = list(z["ids"])
    au_wise_0 = z["au_wise"][0]
    assert ids == sorted(prepared.corpus.videos)
    # One batching path (auda.extract_corpus) for both: the same numbers, exactly.
    np.testing.assert_array_equal(z["au_wise"], np.stack([prepared.auwise[v] for v in ids]))
    np.testing.assert_array_equal(z["cross_au"], np.stack([prepared.crossau[v] for v in ids]))
    first = z["frame"][z["offsets"][0] : z["offsets"][1]]
    assert first.shape == (prepared.corpus.videos[ids[0]].n_frames, 154)
  with pytest.raises(InputError, match="exists"):
    extract.extract_features(config, out)
  back = auda_package.read_auda_package(pkg, ids=ids[:2])
  np.testing.assert_array_equal(back[ids[0]].au_wise["apex"], au_wise_0[119:238])  # segment 1 of 4, exact


def test_bin_scripts_report_errors_in_one_line(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      str(REPO / "bin" / "run_all_folds"),
      f"--config={REPO}/configs/uvanemo.py",
      f"--workdir={tmp_path / 'wd'}",
      "--compile_cache=",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert errors == ["error: config 'uvanemo' needs the corpus folder: --config.data.root=<folder>"]
  assert not (tmp_path / "wd").exists()


def test_bad_input_stops_before_any_fold_or_loading(config, tmp_path, monkeypatch):
  def no_loading(_):
    raise AssertionError("the corpus was loaded before the input check")

  monkeypatch.setattr(experiment, "prepare", no_loading)
  with pytest.raises(InputError, match="no fold 11"):
    experiment.run_fold(config, tmp_path / "wd", 11)
  with pytest.raises(InputError, match="no fold 0,11"):
    experiment.run_all_folds(config, tmp_path / "wd", [1, 0, 11])
  missing = config.copy_and_resolve_references()
  missing.data.root = str(tmp_path / "nowhere")
  with pytest.raises(InputError, match="nowhere: corpus folder does not exist"):
    experiment.run_all_folds(missing, tmp_path / "wd")
  with pytest.raises(InputError, match="no fold 11"):  # bin/run_fold's order: the workdir first, then the fold
    experiment.check_workdir(config, tmp_path / "wd", folds=[11])
  assert not (tmp_path / "wd").exists()
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(InputError, match=f"{a_file}: not a folder"):
    experiment.check_workdir(config, a_file, folds=[1])


def test_auda_package_corpus_runs_the_auda_methods_only(config, fold1, tmp_path):
  """The replication-data path: our package writer -> bin/import_auda_package's converter -> a fold of the
  AUDA methods (no videos). Its AU-wise accuracy equals the video corpus's (same series, same seeds)."""
  pkg = tmp_path / "pkg"
  extract.extract_features(config, tmp_path / "feats.npz", package_dir=str(pkg))
  root = prepare_lib.prepare(config).corpus.root
  corpus_dir = auda_package.package_to_corpus(pkg, tmp_path / "corpus", folds=nemo.read_fold_lists(root / "folds"))
  c = _load_config("auda_package")
  c.data.root = str(corpus_dir)
  c.folds = (1, 2)
  c.timing.max_videos = 2
  for name in ("framewise", "auwise", "crossau", "fusion_auda"):
    c.models[name] = config.models[name]
  c.train = config.train
  result = experiment.run_fold(c, tmp_path / "wd", 1)
  assert set(result["accuracy"]) == {"framewise", "auwise", "crossau", "fusion_auda"}
  header = (tmp_path / "wd" / "fold_01" / "predictions.csv").read_text().splitlines()[0]
  assert header == "id,subject,label,fold,framewise,auwise,crossau,fusion_auda"
  video_result = fold1[1]
  assert result["n_test"] == video_result["n_test"]
  assert result["accuracy"]["auwise"] == pytest.approx(video_result["accuracy"]["auwise"])
  with pytest.raises(InputError, match="realsmilenet needs videos"):
    c.methods = ("realsmilenet", "framewise")
    experiment.run_methods(c)
