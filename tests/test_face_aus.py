"""The built-in AU source (smilejax.face.aus) and bin/extract_aus on the real clips of ../shared (single_face.mp4: one
person, neutral for ~18 frames, then a broad smile with a blink near frame 27; no_face.mp4: no face at all)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_path

from smilejax.constants import AU_INDEX, AU_NAMES
from smilejax.data import load_corpus
from smilejax.face import aus, frontend, model
from smilejax.io.intensity import read_smile_intensity
from smilejax.io.nemo import write_fold_lists
from smilejax.io.openface import read_openface_csv
from smilejax.io.video import VideoReader, read_video, write_video

REPO = Path(__file__).resolve().parents[1]
POSED, SPONTANEOUS = "001_deliberate_smile_1", "002_spontaneous_smile_1"
REST, SMILE = slice(0, 15), slice(25, 60)  # frames of single_face.mp4 before and during the smile


@pytest.fixture(scope="module")
def model_file():
  """The cached model (fetched once by the set-up; no network when it is already there)."""
  return model.fetch_model()


@pytest.fixture(scope="module")
def face_video():
  return shared_path("data", "real", "single_face.mp4")


@pytest.fixture(scope="module")
def track(model_file, face_video):
  return frontend.track_face(face_video, model_path=model_file)


@pytest.fixture(scope="module")
def au_si(track):
  return aus.aus_from_track(track)


def test_proxy_table_covers_the_17_aus():
  assert tuple(p.au for p in aus.AU_PROXIES) == AU_NAMES
  au06 = aus.AU_PROXIES[AU_INDEX[6]]
  assert au06.landmark and "cheekSquint" not in au06.source


def test_aus_follow_the_smile(au_si):
  au_TxA, si_T = au_si
  assert au_TxA.shape == (72, 17) and au_TxA.dtype == np.float64 and si_T.shape == (72,)
  assert np.all(np.isfinite(au_TxA)) and np.all(np.isfinite(si_T))
  assert au_TxA.min() >= 0 and au_TxA.max() <= 5
  assert si_T.min() >= 0 and si_T.max() <= 1
  au12, au06 = au_TxA[:, AU_INDEX[12]], au_TxA[:, AU_INDEX[6]]
  assert au12[REST].max() < 0.5 and au12[SMILE].min() > 3.0
  assert si_T[REST].max() < 0.1 and si_T[SMILE].min() > 0.6
  # AU06 from the cheek landmarks: ~0 at rest, clearly up during the smile, the blink (frames 26-30) bridged.
  assert au06[REST].max() < 0.5 and au06[SMILE].min() > 1.5 and au06[SMILE].max() < 4.0
  # The blink shows on AU45 and not as a smile.
  au45 = au_TxA[:, AU_INDEX[45]]
  assert 24 <= int(np.argmax(au45)) <= 30 and au45.max() > 1.5


def test_crops_framed_and_roll_free(track, face_video):
  crops = aus.crop_faces(track, VideoReader(face_video))
  assert crops.shape == (72, 48, 48, 3) and crops.dtype == np.uint8
  assert crops.std() > 10  # a picture, not a flat fill
  h, w = track.size_hw
  pts = track.landmarks_TxNx3[:, :, :2].astype(np.float64) * [w, h]
  for t in (0, 40):
    m = aus._crop_matrix(pts[t], 48)
    left, right = (m[:, :2] @ pts[t, i] + m[:, 2] for i in aus.OUTER_EYE)
    assert right[0] - left[0] == pytest.approx(0.52 * 48, abs=1e-6)
    assert right[1] == pytest.approx(left[1], abs=1e-6)
    assert 0.25 * 48 < left[1] < 0.45 * 48


def test_head_roll_removed(tmp_path, model_file, face_video, track, au_si):
  """The clip turned by 15 degrees gives nearly the same AUs and nearly the same crops."""
  clip = read_video(face_video)
  h, w = track.size_hw
  turn = cv2.getRotationMatrix2D((w / 2, h / 2), 15.0, 1.0)
  frames = np.stack([cv2.warpAffine(f, turn, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in clip.frames_TxHxWxC])
  turned = frontend.track_face(write_video(tmp_path / "turned.mp4", frames, fps=clip.fps), model_path=model_file)
  au_TxA, _ = aus.aus_from_track(turned)
  assert np.abs(au_TxA - au_si[0]).mean(axis=0).max() < 0.5
  for i in (6, 12, 25):
    assert np.abs(au_TxA[:, AU_INDEX[i]] - au_si[0][:, AU_INDEX[i]]).mean() < 0.3
  straight = aus.crop_faces(track, clip.frames_TxHxWxC).astype(np.float64)
  level = aus.crop_faces(turned, frames).astype(np.float64)
  assert np.abs(level - straight).mean() < 8  # 2.6 here; 27.6 with the roll left in


def test_outputs_read_back(tmp_path, track, au_si):
  au_TxA, si_T = au_si
  crops = np.zeros((72, 48, 48, 3), np.uint8)
  sidecar = aus.write_outputs(tmp_path, POSED, track, au_TxA, si_T, crops, model_sha256="0" * 64)
  assert aus.is_done(tmp_path, POSED)
  of = read_openface_csv(tmp_path / "openface" / f"{POSED}.csv")
  assert of.fps == pytest.approx(30.0) and of.success_T.all()
  np.testing.assert_allclose(of.au_TxA, au_TxA, atol=0.006)
  np.testing.assert_allclose(
    read_smile_intensity(tmp_path / "smile_intensities" / f"{POSED}_smile_intensities.txt"), si_T, atol=1e-6
  )
  meta = json.loads(sidecar.read_text())
  assert meta["au_source"] == "mediapipe" and meta["n_frames"] == 72 and meta["mediapipe_version"]
  assert np.load(aus.crop_path(tmp_path, POSED)).shape == (72, 48, 48, 3)


def _extract(folder: Path, out: Path, model_file: Path, *extra: str) -> subprocess.CompletedProcess:
  cmd = [
    sys.executable,
    str(REPO / "bin" / "extract_aus"),
    str(folder),
    f"--out={out}",
    f"--model={model_file}",
    *extra,
  ]
  env = dict(os.environ, SMILEJAX_NO_REEXEC="1")
  return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_extract_aus_folder(tmp_path, model_file, face_video):
  videos = tmp_path / "raw"
  videos.mkdir()
  for vid in (POSED, SPONTANEOUS):
    shutil.copy(face_video, videos / f"{vid}.mp4")
  shutil.copy(shared_path("data", "real", "no_face.mp4"), videos / "no_face.mp4")
  out = tmp_path / "corpus"

  first = _extract(videos, out, model_file, "--workers=2")
  assert first.returncode == 1, first.stderr[-2000:]
  last = first.stderr.strip().splitlines()[-1]
  assert last.startswith("error: 1 of 3 video(s) refused: no_face: no face found in "), last
  assert "Traceback" not in first.stderr
  for vid in (POSED, SPONTANEOUS):
    assert aus.is_done(out, vid) and (out / "videos" / f"{vid}.mp4").is_file()
  assert not (out / "openface" / "no_face.csv").exists()

  write_fold_lists(out / "folds", {1: [POSED], 2: [SPONTANEOUS]})
  corpus = load_corpus(out, use_cache=False, progress=False, au_source="mediapipe")  # frames from crops/
  assert sorted(corpus.videos) == [POSED, SPONTANEOUS]
  assert corpus.videos[POSED].frames_TxHxWxC.shape[1:] == (48, 48, 3)

  stamp = (out / "openface" / f"{POSED}.csv").stat().st_mtime_ns
  again = _extract(videos, out, model_file, "--workers=1")
  assert again.returncode == 1 and "no face found" in again.stderr.strip().splitlines()[-1]
  assert again.stderr.count("done already, skipped") == 2
  assert (out / "openface" / f"{POSED}.csv").stat().st_mtime_ns == stamp


def test_extract_aus_needs_one_input(tmp_path, model_file):
  proc = _extract(tmp_path, tmp_path / "out", model_file)  # a folder without videos
  assert (
    proc.returncode == 1
    and proc.stderr.strip().splitlines()[-1]
    == f"error: {tmp_path}: no videos (.mp4, .mov, .m4v, .mkv, .avi, .webm) in the folder"
  )
  cmd = [sys.executable, str(REPO / "bin" / "extract_aus"), f"--out={tmp_path}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
    "error: no VIDEO_OR_FOLDER given (usage: bin/extract_aus VIDEO_OR_FOLDER --out=DIR)"
  ]
