"""Readers and writers of smilejax.io: OpenFace CSV, smile intensity, video, fold lists, corpus layout."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import raises_input_error, shared_path

from smilejax.constants import AU_INTENSITY_COLUMNS, AU_PRESENCE_COLUMNS, NUM_AUS
from smilejax.errors import InputError
from smilejax.io import intensity, nemo, openface, video

DATA = Path(__file__).resolve().parent / "data"


def real_file(name: str) -> Path:
  return shared_path("data", "real", name)


# ---------------------------------------------------------------------------------------------------------- errors


def test_input_error_is_a_one_line_value_error():
  err = InputError("a.csv: first\nsecond")
  assert isinstance(err, ValueError)
  assert str(err) == "a.csv: first second"


# -------------------------------------------------------------------------------------------------------- OpenFace


def _series(n=60, seed=0):
  rng = np.random.default_rng(seed)
  au = np.round(rng.uniform(-0.5, 5.0, size=(n, NUM_AUS)), 2)
  presence = (rng.uniform(size=(n, len(AU_PRESENCE_COLUMNS))) > 0.5).astype(float)
  return au, presence


@pytest.mark.parametrize("face_id", [True, False])
def test_openface_round_trip(tmp_path, face_id):
  au, presence = _series()
  au_raw = au + np.random.default_rng(1).uniform(-0.004, 0.004, size=au.shape)  # rounded on writing
  ts = np.arange(au.shape[0]) / 50.0
  path = openface.write_openface_csv(
    tmp_path / "x.csv", au_raw, timestamps_T=ts, presence_TxC=presence, face_id=face_id, decimals=2
  )
  header = path.read_text().splitlines()[0]
  assert header.startswith("frame, face_id, timestamp" if face_id else "frame, timestamp")
  s = openface.read_openface_csv(path)
  np.testing.assert_allclose(s.au_TxA, np.round(au_raw, 2), atol=1e-9)
  np.testing.assert_allclose(s.presence_TxC, presence, atol=0)
  np.testing.assert_allclose(s.timestamps_T, ts, atol=1e-9)
  assert s.fps == 50.0 and s.n_interpolated == 0 and s.success_T.all() and s.n_frames == au.shape[0]
  assert s.au_TxA.dtype == np.float64 and s.au_TxA.shape == (au.shape[0], NUM_AUS)


def test_openface_fps_from_three_decimal_timestamps(tmp_path):
  # OpenFace prints timestamps with 3 decimals: single steps at 30 fps read 0.033/0.034.
  au, _ = _series(n=90)
  path = tmp_path / "x.csv"
  openface.write_openface_csv(path, au, timestamps_T=np.round(np.arange(90) / 30.0, 3))
  assert openface.read_openface_csv(path).fps == pytest.approx(30.0, abs=0.01)
  assert openface.read_openface_csv(path, fps=29.97).fps == 29.97


def test_openface_real_file():
  path = DATA / "OpenFace_Test.csv"
  # Its timestamps step by 0.001 s (1000 fps): refused with a line that names the flag, not passed on to a
  # misleading length error; a given fps overrides them.
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "1000 fps", "10-240 fps", "--fps")
  s = openface.read_openface_csv(path, fps=30)
  # The file holds 100 data rows (frames 1..100; the shared README says 99), no face_id column.
  assert s.au_TxA.shape == (100, NUM_AUS)
  assert "face_id" not in path.read_text().splitlines()[0]
  assert s.au_TxA[0, 0] == pytest.approx(0.6773) and s.au_TxA[0, 16] == pytest.approx(0.02348)
  assert s.presence_TxC.shape == (100, 18)
  assert s.success_T.all() and s.n_interpolated == 0
  assert s.fps == 30.0 and np.all(np.isfinite(s.au_TxA))
  assert openface.read_openface_csv(path, fps_range=(10, 1000)).fps == pytest.approx(1000.0)


def test_openface_column_subset_and_order(tmp_path):
  au, _ = _series(n=20)
  cols = list(reversed(AU_INTENSITY_COLUMNS))
  lines = [", ".join(["timestamp"] + cols)]
  for t in range(20):
    lines.append(", ".join([f"{t / 25:.3f}"] + [f"{au[t, AU_INTENSITY_COLUMNS.index(c)]:.2f}" for c in cols]))
  path = tmp_path / "subset.csv"
  path.write_text("\n".join(lines) + "\n")
  s = openface.read_openface_csv(path)
  np.testing.assert_allclose(s.au_TxA, au, atol=1e-9)
  assert s.fps == 25.0 and s.presence_TxC is None and s.confidence_T.shape == (20,)


def _write(tmp_path, au, *, success=None, name="x.csv"):
  return openface.write_openface_csv(
    tmp_path / name, au, timestamps_T=np.arange(au.shape[0]) / 50.0, success_T=success, decimals=4
  )


def test_openface_missing_au_column(tmp_path):
  path = _write(tmp_path, _series(n=10)[0])
  lines = path.read_text().splitlines()
  names = [c.strip() for c in lines[0].split(",")]
  j = names.index("AU12_r")
  path.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != j) for line in lines))
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "AU12_r")


def test_openface_short_failed_gap_interpolated(tmp_path):
  au, _ = _series(n=80)
  success = np.ones(80, bool)
  success[20:25] = False  # 5 failed frames (OpenFace writes zeros there)
  success[:2] = False  # an edge gap: nearest good value
  au_file = au.copy()
  au_file[~success] = 0.0
  s = openface.read_openface_csv(_write(tmp_path, au_file, success=success))
  assert s.n_interpolated == 7
  w = (np.arange(20, 25) - 19) / 6.0
  np.testing.assert_allclose(s.au_TxA[20:25], au[19] + w[:, None] * (au[25] - au[19]), atol=1e-9)
  np.testing.assert_allclose(s.au_TxA[:2], np.repeat(au[2:3], 2, axis=0), atol=1e-9)
  np.testing.assert_allclose(s.au_TxA[success], au[success], atol=1e-9)
  assert not s.success_T[20:25].any() and s.success_T[25:].all()


def test_openface_long_failed_run_refused(tmp_path):
  au, _ = _series(n=200)
  success = np.ones(200, bool)
  success[20:31] = False  # 11 > 10 frames = 0.2 s at 50 fps
  path = _write(tmp_path, au, success=success)
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "11 consecutive", "21-31", "0.2 s")
  assert openface.read_openface_csv(path, max_gap_seconds=0.22).n_interpolated == 11
  success[20:31] = True
  success[20:30] = False  # 10 frames: allowed
  assert openface.read_openface_csv(_write(tmp_path, au, success=success, name="y.csv")).n_interpolated == 10
  # The limit is in seconds: at 25 fps (the same file, a given rate) 0.2 s is 5 frames.
  raises_input_error(lambda: openface.read_openface_csv(path, fps=25.0), "11 consecutive", "more than the 5")
  assert [openface.max_gap_frames(0.2, f) for f in (50, 30, 25, 29.97)] == [10, 6, 5, 6]


def test_openface_too_many_failed_frames_refused(tmp_path):
  au, _ = _series(n=100)
  success = np.ones(100, bool)
  for start in (5, 25, 45, 65):
    success[start : start + 3] = False  # 12 % of frames, each gap short
  path = _write(tmp_path, au, success=success)
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "12 of 100", "frames 6-8")
  assert openface.read_openface_csv(path, max_failed_fraction=0.2).n_interpolated == 12


def test_openface_nan_values(tmp_path):
  au, _ = _series(n=100)
  path = _write(tmp_path, au)
  lines = path.read_text().splitlines()
  names = [c.strip() for c in lines[0].split(",")]
  j = names.index("AU06_r")

  def with_nan(rows):
    out = list(lines)
    for r in rows:
      cells = out[r + 1].split(",")
      cells[j] = "nan"
      out[r + 1] = ",".join(cells)
    return "\n".join(out) + "\n"

  path.write_text(with_nan(range(40, 43)))
  s = openface.read_openface_csv(path)
  assert s.n_interpolated == 3 and np.all(np.isfinite(s.au_TxA))
  k = AU_INTENSITY_COLUMNS.index("AU06_r")
  np.testing.assert_allclose(s.au_TxA[41, k], au[39, k] + (au[43, k] - au[39, k]) / 2, atol=1e-4)
  path.write_text(with_nan(range(40, 52)))
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "12 consecutive", "41-52")


@pytest.mark.parametrize(
  "content, what",
  [
    ("", "empty"),
    ("frame, timestamp, " + ", ".join(AU_INTENSITY_COLUMNS) + "\n", "header only"),
    (
      "frame, timestamp, "
      + ", ".join(AU_INTENSITY_COLUMNS)
      + "\n1, 0.0, "
      + ", ".join(["0.1"] * 16)
      + ", abc\n"
      + "2, 0.02, "
      + ", ".join(["0.1"] * 17)
      + "\n",
      "non-numeric",
    ),
  ],
)
def test_openface_bad_files(tmp_path, content, what):
  path = tmp_path / "bad.csv"
  path.write_text(content)
  raises_input_error(lambda: openface.read_openface_csv(path), str(path))


@pytest.mark.parametrize(
  "content",
  [b"hello world\nthis is, not a csv\n", b"id,value\n1,2\n", bytes(range(256)) * 4],
  ids=["text", "other-csv", "binary"],
)
def test_not_an_openface_csv(tmp_path, content):
  path = tmp_path / "notes.csv"
  path.write_bytes(content)
  msg = raises_input_error(lambda: openface.read_openface_csv(path), str(path), "not an OpenFace CSV")
  assert "missing AU column" not in msg


def test_openface_rate_from_timestamps_must_be_plausible(tmp_path):
  au, _ = _series(n=40)
  path = openface.write_openface_csv(tmp_path / "x.csv", au, timestamps_T=np.arange(40) * 0.2)  # 5 fps
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "5 fps", "--fps", "--config.data.fps")
  assert openface.read_openface_csv(path, fps=50.0).fps == 50.0
  assert openface.read_openface_csv(path, fps_range=(1, 240)).fps == 5.0


def test_openface_several_faces_refused(tmp_path):
  au, _ = _series(n=10)
  path = _write(tmp_path, au)
  lines = path.read_text().splitlines()
  lines[5] = lines[5].replace(",0,", ",1,", 1)  # face_id of one row -> 1
  path.write_text("\n".join(lines) + "\n")
  raises_input_error(lambda: openface.read_openface_csv(path), str(path), "2 faces")


def test_openface_missing_file(tmp_path):
  raises_input_error(lambda: openface.read_openface_csv(tmp_path / "nope.csv"), "nope.csv")


# ------------------------------------------------------------------------------------------------ smile intensity


def test_smile_intensity_round_trip(tmp_path):
  si = np.random.default_rng(0).normal(0, 0.01, 57)
  path = intensity.write_smile_intensity(tmp_path / "a_smile_intensities.txt", si)
  back = intensity.read_smile_intensity(path)
  np.testing.assert_allclose(back, np.round(si, 6), atol=1e-12)
  assert back.shape == (57,)


def test_smile_intensity_reference_file():
  path = shared_path("data", "auda_reference", "001_deliberate_smile_2_smile_intensities.txt")
  si = intensity.read_smile_intensity(path)
  assert si.shape == (104,) and si[0] == pytest.approx(-0.017202)


@pytest.mark.parametrize(
  "content, where",
  [
    ("0.1\n0.2\n\n0.3\n", "line 3"),
    ("0.1\nfoo\n", "line 2"),
    ("0.1\nnan\n", "line 2"),
    ("0.1\n0.2 0.3\n", "line 2"),
    ("", "empty"),
  ],
)
def test_smile_intensity_bad(tmp_path, content, where):
  path = tmp_path / "s.txt"
  path.write_text(content)
  raises_input_error(lambda: intensity.read_smile_intensity(path), str(path), where)


# ----------------------------------------------------------------------------------------------------------- video


def test_read_real_video():
  v = video.read_video(real_file("single_face.mp4"))
  assert v.frames_TxHxWxC.shape == (72, 360, 640, 3) and v.frames_TxHxWxC.dtype == np.uint8
  assert v.fps == pytest.approx(30.0)
  np.testing.assert_allclose(v.timestamps_T, np.arange(72) / 30.0, atol=1e-3)
  assert 20 < v.frames_TxHxWxC.mean() < 235  # a real picture, not a blank


def test_read_no_face_video_and_early_stop():
  path = real_file("no_face.mp4")
  reader = video.VideoReader(path)
  for i, frame in enumerate(reader):
    assert frame.shape == (540, 960, 3)
    assert reader.fps == pytest.approx(23.67)  # known from the first frame on
    if i == 2:
      break  # stopping early must not hang or raise


def _moving_pattern(t=30, h=64, w=64):
  yy, xx = np.mgrid[:h, :w]
  frames = np.empty((t, h, w, 3), np.uint8)
  for i in range(t):
    frames[i, ..., 0] = (xx * 3 + i * 4) % 256
    frames[i, ..., 1] = yy * 3
    frames[i, ..., 2] = 128
  return frames


@pytest.mark.parametrize("pix_fmt, tol", [("yuv420p", 4.0), ("yuv444p", 2.0)])
def test_write_read_video_round_trip(tmp_path, pix_fmt, tol):
  frames = _moving_pattern()
  path = video.write_video(tmp_path / "v.mp4", frames, fps=50, crf=10, pix_fmt=pix_fmt)
  v = video.read_video(path)
  assert v.frames_TxHxWxC.shape == frames.shape and v.fps == 50.0
  np.testing.assert_allclose(v.timestamps_T, np.arange(30) / 50.0, atol=1e-6)
  assert np.abs(v.frames_TxHxWxC.astype(float) - frames).mean() < tol


def test_truncated_real_video(tmp_path):
  data = real_file("single_face.mp4").read_bytes()
  path = tmp_path / "half.mp4"
  path.write_bytes(data[: len(data) // 2])
  raises_input_error(lambda: video.read_video(path), str(path))


def test_truncated_faststart_video(tmp_path):
  # Index at the front: ffmpeg decodes the first frames and reports "partial file".
  full = video.write_video(tmp_path / "full.mp4", _moving_pattern(t=40), fps=50)
  data = full.read_bytes()
  path = tmp_path / "cut.mp4"
  path.write_bytes(data[: len(data) // 2])
  raises_input_error(lambda: video.read_video(path), str(path), "truncated")


def test_non_monotonic_timestamps_are_not_a_decoding_error(tmp_path, caplog):
  """Phone clips (HEVC, B-frames, edit lists) can carry presentation times that go back; ffmpeg's output muxer
  then complains ("non monotonically increasing dts") though every frame decodes: no "decoding error" warning."""
  path = tmp_path / "nonmono.mkv"
  cmd = [video._ffmpeg(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=25"]
  cmd += ["-frames:v", "20", "-vf", "setpts=if(eq(N\\,10)\\,PTS-3\\,PTS)", "-fps_mode", "passthrough"]
  subprocess.run(cmd + ["-c:v", "libx264", "-preset", "ultrafast", str(path)], check=True, capture_output=True)
  with caplog.at_level(logging.WARNING):
    v = video.read_video(path)
  assert v.n_frames == 20 and np.any(np.diff(v.timestamps_T) <= 0)  # the times really do not increase
  assert not [r for r in caplog.records if "decoding error" in r.getMessage()], caplog.text


def test_video_must_match_its_csv():
  ok = dict(max_frames=2, max_duration=0.02)
  video.check_video_matches("v.mp4", 200, 50.0, "v.csv", 198, 50.0, **ok)  # within 2 frames and 2 %
  raises_input_error(
    lambda: video.check_video_matches("v.mp4", 95, 23.7, "v.csv", 200, 50.0, **ok), "v.mp4", "v.csv", "95 frames"
  )
  raises_input_error(lambda: video.check_video_matches("v.mp4", 200, 48.0, "v.csv", 200, 50.0, **ok), "4.17 s")
  raises_input_error(lambda: video.check_video_matches("v.mp4", 203, 50.0, "v.csv", 200, 50.0, **ok), "203")


@pytest.mark.parametrize("content", [None, b"", b"not a video at all\n"])
def test_bad_video_files(tmp_path, content):
  path = tmp_path / "bad.mp4"
  if content is not None:
    path.write_bytes(content)
  raises_input_error(lambda: video.read_video(path), str(path))


def test_resize_matches_pillow():
  pil = pytest.importorskip("PIL.Image")
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, size=(3, 64, 80, 3), dtype=np.uint8)
  out = video.resize_frames(frames, 48)
  ref = np.stack([np.asarray(pil.fromarray(f).resize((48, 48), pil.BICUBIC)) for f in frames])
  assert out.shape == (3, 48, 48, 3) and out.dtype == np.uint8
  assert np.abs(out.astype(int) - ref).max() <= 1
  const = np.full((2, 30, 50, 3), 77, np.uint8)
  assert (video.resize_frames(const, (48, 40)) == 77).all()
  assert video.resize_frames(frames[0], (20, 30)).shape == (20, 30, 3)


# ------------------------------------------------------------------------------------------------------ fold lists


def test_package_fold_lists():
  folds = nemo.read_fold_lists()
  assert sorted(folds) == list(range(1, 11))
  ids = [v for k in folds for v in folds[k]]
  assert len(ids) == len(set(ids)) == 1240
  labels = [nemo.parse_video_id(v)[1] for v in ids]
  assert labels.count(0) == 643 and labels.count(1) == 597
  subject_folds = {}
  for k, fold_ids in folds.items():
    assert fold_ids == sorted(fold_ids)
    for v in fold_ids:
      subject_folds.setdefault(v[:3], set()).add(k)
  assert len(subject_folds) == 400
  assert all(len(ks) == 1 for ks in subject_folds.values())
  assert len(folds[1]) == 124 and len(folds[9]) == 114


def test_package_fold_lists_are_the_official_bytes():
  official = shared_path("data", "uva_nemo_folds")
  pkg = nemo.package_folds_dir()
  for kind in "PS":
    for k in range(1, 11):
      name = nemo.fold_file_name(kind, k)
      assert pkg.joinpath(name).read_bytes() == (official / name).read_bytes(), name


def test_parse_video_id():
  assert nemo.parse_video_id("001_deliberate_smile_2") == ("001", 0)
  assert nemo.parse_video_id("123_spontaneous_smile_10") == ("123", 1)
  for bad in ["1_deliberate_smile_2", "001_posed_smile_1", "001_deliberate_smile_", "001_deliberate_smile_1.mp4"]:
    raises_input_error(lambda: nemo.parse_video_id(bad), repr(bad))


def test_fold_lists_round_trip_and_errors(tmp_path):
  folds = {
    1: ["001_deliberate_smile_1", "001_spontaneous_smile_1"],
    2: ["002_deliberate_smile_1"],
    3: ["003_spontaneous_smile_2", "004_spontaneous_smile_1"],
  }
  nemo.write_fold_lists(tmp_path / "f", folds)
  assert nemo.read_fold_lists(tmp_path / "f") == folds
  assert (tmp_path / "f" / "S_fold_all_2.txt").read_text() == ""  # fold 2 has no spontaneous ids

  (tmp_path / "f" / "S_fold_all_2.txt").unlink()
  raises_input_error(lambda: nemo.read_fold_lists(tmp_path / "f"), "S_fold_all_2.txt")

  nemo.write_fold_lists(tmp_path / "g", {1: ["001_deliberate_smile_1"], 2: ["001_spontaneous_smile_1"]})
  raises_input_error(lambda: nemo.read_fold_lists(tmp_path / "g"), "S_fold_all_2.txt", "subject 001")

  nemo.write_fold_lists(tmp_path / "h", {1: ["001_deliberate_smile_1"]})
  (tmp_path / "h" / "P_fold_all_1.txt").write_text("001_deliberate_smile_1\n001_spontaneous_smile_1\n")
  raises_input_error(lambda: nemo.read_fold_lists(tmp_path / "h"), "P_fold_all_1.txt", "001_spontaneous_smile_1")

  (tmp_path / "h" / "P_fold_all_1.txt").write_text("001_deliberate_smile_1\nbogus\n")
  raises_input_error(lambda: nemo.read_fold_lists(tmp_path / "h"), "P_fold_all_1.txt", "'bogus'")
  raises_input_error(lambda: nemo.read_fold_lists(tmp_path / "nowhere"), "nowhere")


# ------------------------------------------------------------------------------------------------- corpus layout


def _layout(root: Path, ids, *, skip=()):
  """Empty placeholder files in the corpus layout (scan_dataset checks names only)."""
  for d in ("videos", "openface", "smile_intensities"):
    (root / d).mkdir(parents=True, exist_ok=True)
  for v in ids:
    for rel in (f"videos/{v}.mp4", f"openface/{v}.csv", f"smile_intensities/{v}_smile_intensities.txt"):
      if rel not in skip:
        (root / rel).write_text("")


def test_scan_dataset(tmp_path):
  folds = {1: ["001_deliberate_smile_1", "001_spontaneous_smile_1"], 2: ["002_deliberate_smile_1"]}
  nemo.write_fold_lists(tmp_path / "folds", folds)
  _layout(tmp_path, [v for ids in folds.values() for v in ids])
  (tmp_path / "openface" / "009_deliberate_smile_1.csv").write_text("")  # in no fold: ignored
  files = nemo.scan_dataset(tmp_path)
  assert files.ids == ("001_deliberate_smile_1", "001_spontaneous_smile_1", "002_deliberate_smile_1")
  assert files.folds == folds
  assert files.video_paths["002_deliberate_smile_1"] == tmp_path / "videos" / "002_deliberate_smile_1.mp4"
  assert files.si_paths["001_spontaneous_smile_1"].name == "001_spontaneous_smile_1_smile_intensities.txt"


def test_scan_dataset_reports_all_missing_files(tmp_path):
  folds = {1: ["001_deliberate_smile_1", "001_spontaneous_smile_1"], 2: ["002_deliberate_smile_1"]}
  nemo.write_fold_lists(tmp_path / "folds", folds)
  skip = {
    "videos/001_deliberate_smile_1.mp4",
    "openface/001_spontaneous_smile_1.csv",
    "smile_intensities/002_deliberate_smile_1_smile_intensities.txt",
  }
  _layout(tmp_path, [v for ids in folds.values() for v in ids], skip=skip)
  raises_input_error(lambda: nemo.scan_dataset(tmp_path), str(tmp_path), "3 file(s) missing", *sorted(skip))
  # Without videos and SI requirements only the OpenFace file is missing.
  raises_input_error(
    lambda: nemo.scan_dataset(tmp_path, require_video=False, require_si=False),
    "1 file(s) missing",
    "openface/001_spontaneous_smile_1.csv",
  )


def test_scan_dataset_unknown_id_in_fold_list(tmp_path):
  folds = {1: ["001_deliberate_smile_1"], 2: ["002_deliberate_smile_1", "002_spontaneous_smile_4"]}
  nemo.write_fold_lists(tmp_path / "folds", folds)
  _layout(tmp_path, ["001_deliberate_smile_1", "002_deliberate_smile_1"])
  raises_input_error(lambda: nemo.scan_dataset(tmp_path), "S_fold_all_2.txt", "002_spontaneous_smile_4")


def test_scan_dataset_missing_folder_and_fold_file(tmp_path):
  nemo.write_fold_lists(tmp_path / "folds", {1: ["001_deliberate_smile_1"], 2: ["002_deliberate_smile_1"]})
  raises_input_error(lambda: nemo.scan_dataset(tmp_path), "openface/", "smile_intensities/", "videos/")
  _layout(tmp_path, ["001_deliberate_smile_1", "002_deliberate_smile_1"])
  (tmp_path / "folds" / "P_fold_all_2.txt").unlink()
  raises_input_error(lambda: nemo.scan_dataset(tmp_path), "P_fold_all_2.txt")


def test_scan_dataset_defaults_to_package_folds(tmp_path):
  # No folds/ folder: the official lists are used, so an almost empty folder lists 1240 unknown ids.
  _layout(tmp_path, ["001_deliberate_smile_1"])
  msg = raises_input_error(lambda: nemo.scan_dataset(tmp_path), "smilejax/data/folds/P_fold_all_")
  assert re.search(r"\d+ id\(s\) listed but with no files", msg)
