"""``data.au_source``: a corpus written by bin/extract_aus ("mediapipe": OpenFace-layout CSVs of AU proxies, SI files,
``crops/<id>.npy`` and a sidecar per video) is read with RealSmileNet's frames from the crops, the two sources are
never mixed silently, and the default ("openface") reads today's corpus as before.

The mediapipe-style corpus is built without MediaPipe: a few folds of the session's tiny corpus, their CSV and SI
files copied, each video's frames decoded and resized to 48x48 as crops, and the sidecars written.
"""

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import raises_input_error

from smilejax import data, experiment, prepare, report, results
from smilejax.io import nemo
from smilejax.io import video as video_io

REPO = Path(__file__).resolve().parents[1]
N_FOLDS = 4  # the tiny corpus's folds 1-4 (renumbered as they are)


def _write_sidecar(root: Path, vid: str, source: str = "mediapipe") -> None:
  (root / "openface" / f"{vid}{nemo.AU_SOURCE_SUFFIX}").write_text(json.dumps({"au_source": source}))


@pytest.fixture(scope="module")
def mp_corpus(tmp_path_factory, tiny_corpus) -> Path:
  """Folds 1-4 of the tiny corpus in bin/extract_aus's layout (no videos/: frames only from crops/)."""
  root = tmp_path_factory.mktemp("au_source") / "mp"
  folds = {k: ids for k, ids in nemo.read_fold_lists(tiny_corpus / "folds").items() if k <= N_FOLDS}
  for sub in ("openface", "smile_intensities", "crops"):
    (root / sub).mkdir(parents=True)
  for vid in (v for ids in folds.values() for v in ids):
    shutil.copy(tiny_corpus / "openface" / f"{vid}.csv", root / "openface")
    shutil.copy(tiny_corpus / "smile_intensities" / f"{vid}_smile_intensities.txt", root / "smile_intensities")
    frames = np.stack(list(video_io.VideoReader(tiny_corpus / "videos" / f"{vid}.mp4")))
    np.save(root / "crops" / f"{vid}.npy", video_io.resize_frames(frames, 48))
    _write_sidecar(root, vid)
  nemo.write_fold_lists(root / "folds", folds)
  return root


def _copy(mp_corpus: Path, tmp_path: Path) -> Path:
  dest = tmp_path / "copy"
  shutil.copytree(mp_corpus, dest)
  return dest


def test_mediapipe_corpus_frames_come_from_the_crops(mp_corpus, tiny_corpus):
  corpus = data.load_corpus(mp_corpus, use_cache=False, progress=False, au_source="mediapipe")
  assert len(corpus) > 8 and sorted(corpus.folds) == list(range(1, N_FOLDS + 1))
  reference = data.load_corpus(tiny_corpus, cache_dir=mp_corpus.parent / "ref_cache", progress=False)
  for vid, video in corpus.videos.items():
    ref = reference[vid]
    crops = np.load(mp_corpus / "crops" / f"{vid}.npy")
    assert video.meta["frame_indices"] == ref.meta["frame_indices"]  # the mp4 path's sampling
    np.testing.assert_array_equal(video.frames_TxHxWxC, crops[video.meta["frame_indices"]])
    # the crops are the decoded frames resized as the mp4 path resizes them (a grey level of batching noise at most)
    assert np.abs(video.frames_TxHxWxC.astype(int) - ref.frames_TxHxWxC.astype(int)).max() <= 1
    np.testing.assert_array_equal(video.au_TxA, ref.au_TxA)  # the AU / SI readers are unchanged
    np.testing.assert_array_equal(video.si_T, ref.si_T)
  small = data.load_corpus(mp_corpus, use_cache=False, progress=False, au_source="mediapipe", frame_size=32)
  vid = corpus.ids[0]
  expected = video_io.resize_frames(corpus[vid].frames_TxHxWxC, 32)
  np.testing.assert_array_equal(small[vid].frames_TxHxWxC, expected)


def test_prepare_with_au_source_mediapipe(mp_corpus):
  config = runpy.run_path(str(REPO / "configs" / "test.py"))["get_config"]()
  config.data.root = str(mp_corpus)
  config.data.au_source = "mediapipe"
  config.data.cache_dir = str(mp_corpus.parent / "cache")  # shared with the bin/run_fold test (AUDA features)
  experiment.validate_config(config)
  prepared = prepare.prepare(config)
  vid = prepared.corpus.ids[0]
  crops = np.load(mp_corpus / "crops" / f"{vid}.npy")
  np.testing.assert_array_equal(prepared.frames[vid], crops[prepared.frame_indices[vid]])
  config.data.au_source = "dlib"
  raises_input_error(lambda: experiment.validate_config(config), "data.au_source", "dlib")


def test_a_missing_sidecar_is_refused(mp_corpus, tmp_path):
  root = _copy(mp_corpus, tmp_path)
  vid = sorted(p.name for p in (root / "openface").glob("*.csv"))[1][:-4]
  (root / "openface" / f"{vid}{nemo.AU_SOURCE_SUFFIX}").unlink()
  raises_input_error(
    lambda: data.load_corpus(root, use_cache=False, progress=False, au_source="mediapipe"),
    f"openface/{vid}.csv",
    "written by OpenFace, not by bin/extract_aus",
  )
  # the default source refuses the other (extract_aus) CSVs of the now mixed corpus
  raises_input_error(
    lambda: data.load_corpus(root, use_cache=False, progress=False, with_frames=False),
    "written by bin/extract_aus (au_source mediapipe",
    "not by OpenFace",
    "--config.data.au_source=mediapipe",
  )


def test_a_corpus_of_extract_aus_is_refused_as_openface(mp_corpus):
  for with_frames in (True, False):
    raises_input_error(
      lambda: data.load_corpus(mp_corpus, use_cache=False, progress=False, with_frames=with_frames),
      "openface/",
      "written by bin/extract_aus",
    )


def test_missing_or_bad_crops_are_bad_videos(mp_corpus, tmp_path):
  root = _copy(mp_corpus, tmp_path)
  ids = sorted(p.name[:-4] for p in (root / "crops").glob("*.npy"))
  (root / "crops" / f"{ids[0]}.npy").unlink()
  np.save(root / "crops" / f"{ids[1]}.npy", np.zeros((3, 48, 48, 3), np.uint8))
  msg = raises_input_error(
    lambda: data.load_corpus(root, use_cache=False, progress=False, au_source="mediapipe"),
    "2 of",
    f"crops/{ids[0]}.npy",
    f"crops/{ids[1]}.npy",
  )
  assert "expected uint8" in msg
  # AU + SI only: the crops are not needed
  assert len(data.load_corpus(root, use_cache=False, progress=False, au_source="mediapipe", with_frames=False)) > 8


def test_the_default_reads_todays_corpus_unchanged(tiny_corpus, tmp_path):
  """The key at its default reads the same arrays through the same cache entries as before the key existed (their
  names carry the loading options: nothing is decoded again)."""
  cache = tmp_path / "cache"
  plain = data.load_corpus(tiny_corpus, cache_dir=cache, progress=False)
  entries = sorted((p.name, p.stat().st_mtime_ns) for p in cache.glob("*.npz"))
  opts = data.loading_options({"au_source": "openface"})
  assert opts == data.loading_options({}) and opts["au_source"] == "openface"
  keyed = data.load_corpus(tiny_corpus, cache_dir=cache, progress=False, **opts)
  assert sorted((p.name, p.stat().st_mtime_ns) for p in cache.glob("*.npz")) == entries
  assert keyed.ids == plain.ids and keyed.skipped == plain.skipped
  for vid, video in plain.videos.items():
    other = keyed[vid]
    for name in ("au_TxA", "si_T", "frames_TxHxWxC"):
      np.testing.assert_array_equal(getattr(other, name), getattr(video, name))
    assert other.meta == video.meta and other.fps == video.fps
  raises_input_error(lambda: data.loading_options({"au_source": "OpenFace"}), "data.au_source", "'OpenFace'")


def test_run_fold_on_a_mediapipe_corpus(mp_corpus, tmp_path):
  """bin/run_fold trains the AUDA methods and RealSmileNet on the crops; fold_result.json and results.md say which
  AU source the models were trained on."""
  workdir = tmp_path / "wd"
  cmd = [
    sys.executable,
    str(REPO / "bin" / "run_fold"),
    f"--config={REPO / 'configs' / 'test.py'}",
    f"--config.data.root={mp_corpus}",
    f"--config.data.cache_dir={mp_corpus.parent / 'cache'}",
    "--config.data.au_source=mediapipe",
    "--config.train.epochs=1",
    "--config.timing.enabled=False",
    "--compile_cache=",
    f"--workdir={workdir}",
    "--fold=1",
  ]
  env = dict(os.environ, SMILEJAX_NO_REEXEC="1")
  proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((workdir / "fold_01" / "fold_result.json").read_text())
  assert result["au_source"] == "mediapipe"
  assert set(result["accuracy"]) >= {"realsmilenet", "framewise", "auwise", "crossau"}
  assert json.loads((workdir / "config.json").read_text())["data"]["au_source"] == "mediapipe"
  text = report.report_markdown(results.load_results(workdir, folds=[1]))
  assert "AU source: mediapipe" in text.splitlines()[2]
