"""smilejax.data: loading a corpus folder, the cache, subject-disjoint splits, frame sampling and padding."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from smilejax import data, sequences
from smilejax.constants import AU_INDEX, NUM_AUS
from smilejax.errors import InputError
from smilejax.io import intensity, nemo, openface, video

# 3 folds, 2 subjects each, a posed and a spontaneous clip per subject (one subject has two spontaneous clips).
FOLDS = {
  1: ["001_deliberate_smile_1", "001_spontaneous_smile_1", "002_deliberate_smile_1", "002_spontaneous_smile_1"],
  2: ["003_deliberate_smile_1", "003_spontaneous_smile_1", "003_spontaneous_smile_2", "004_deliberate_smile_1"],
  3: ["005_deliberate_smile_1", "005_spontaneous_smile_1", "006_spontaneous_smile_1"],
}
FPS = {"003_spontaneous_smile_2": 30.0}  # the rest at 50 fps


def _frames(t: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:64, :64] / 64.0
  phase = rng.uniform(0, 2 * np.pi, 3)
  out = np.empty((t, 64, 64, 3), np.uint8)
  for i in range(t):
    for c in range(3):
      out[i, ..., c] = 127 + 100 * np.sin(2 * np.pi * (xx + 0.5 * yy) + phase[c] + 0.1 * i)
  return out


def write_tiny_corpus(root: Path) -> dict[str, dict]:
  """Write a corpus folder in the smilejax layout; returns id -> the arrays written."""
  truth = {}
  nemo.write_fold_lists(root / "folds", FOLDS)
  for j, vid in enumerate(v for ids in FOLDS.values() for v in ids):
    rng = np.random.default_rng(j)
    t = int(rng.integers(20, 61))
    fps = FPS.get(vid, 50.0)
    frames = _frames(t, j)
    au = np.round(rng.uniform(0, 5, size=(t, NUM_AUS)), 2)
    si = np.round(rng.normal(0, 0.01, size=t), 6)
    video.write_video(root / "videos" / f"{vid}.mp4", frames, fps=fps, crf=10)
    openface.write_openface_csv(root / "openface" / f"{vid}.csv", au, timestamps_T=np.arange(t) / fps)
    intensity.write_smile_intensity(root / "smile_intensities" / f"{vid}_smile_intensities.txt", si)
    truth[vid] = {"frames": frames, "au": au, "si": si, "fps": fps}
  return truth


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("corpus")
  return root, write_tiny_corpus(root)


def test_load_corpus(corpus_dir, tmp_path):
  root, truth = corpus_dir
  corpus = data.load_corpus(root, cache_dir=tmp_path / "cache")
  assert corpus.ids == sorted(truth) and corpus.folds == FOLDS
  for vid, v in corpus.videos.items():
    tr = truth[vid]
    t = tr["au"].shape[0]
    stride = sequences.default_frame_stride(tr["fps"])
    idx = sequences.sample_frame_indices(t, stride)
    assert v.subject == vid[:3] and v.label == (1 if "spontaneous" in vid else 0)
    assert v.fps == tr["fps"]
    np.testing.assert_allclose(v.au_TxA, tr["au"], atol=1e-9)
    np.testing.assert_allclose(v.si_T, tr["si"], atol=1e-12)
    assert v.frames_TxHxWxC.shape == (len(idx), 48, 48, 3) and v.frames_TxHxWxC.dtype == np.uint8
    assert v.meta["frame_indices"] == idx.tolist() and v.meta["frame_stride"] == stride
    assert v.meta["n_frames"] == v.meta["n_video_frames"] == t and v.meta["n_interpolated"] == 0
    assert v.meta["si_source"] == "file"
    expected = video.resize_frames(tr["frames"][idx], 48).astype(float)
    assert np.abs(v.frames_TxHxWxC - expected).mean() < 3.0  # H.264 at crf 10, then resized
  assert corpus["003_spontaneous_smile_2"].meta["frame_stride"] == 3  # 30 fps -> every 3rd frame


def test_cache_skips_decoding(corpus_dir, tmp_path, monkeypatch):
  root, _ = corpus_dir
  cache = tmp_path / "cache"
  first = data.load_corpus(root, cache_dir=cache)
  assert len(list(cache.glob("*.npz"))) == len(first)

  class NoDecoding:
    def __init__(self, path):
      raise AssertionError(f"decoder called for {path}")

  monkeypatch.setattr(video, "VideoReader", NoDecoding)
  second = data.load_corpus(root, cache_dir=cache)
  for vid, v in first.videos.items():
    w = second[vid]
    np.testing.assert_array_equal(w.frames_TxHxWxC, v.frames_TxHxWxC)
    np.testing.assert_array_equal(w.au_TxA, v.au_TxA)
    np.testing.assert_array_equal(w.si_T, v.si_T)
    assert w.meta == v.meta and w.fps == v.fps and w.label == v.label

  # Another option (frame size) is another cache entry: it must decode.
  with pytest.raises(AssertionError, match="decoder called"):
    data.load_corpus(root, cache_dir=cache, frame_size=32)
  # A changed source file (new mtime) invalidates its entry only.
  target = root / "videos" / "005_deliberate_smile_1.mp4"
  st = target.stat()
  os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
  with pytest.raises(AssertionError, match="005_deliberate_smile_1"):
    data.load_corpus(root, cache_dir=cache)
  monkeypatch.undo()
  data.load_corpus(root, cache_dir=cache)
  assert len(list(cache.glob("005_deliberate_smile_1.*.npz"))) == 1  # the stale entry was replaced


def test_without_frames_and_without_videos(corpus_dir, tmp_path):
  root, truth = corpus_dir
  copy = _copy_corpus(root, tmp_path / "copy")  # no videos/ (AUDA-only use)
  corpus = data.load_corpus(copy, with_frames=False, use_cache=False)
  assert len(corpus) == len(truth)
  assert all(v.frames_TxHxWxC is None for v in corpus.videos.values())
  assert not (copy / ".cache").exists()
  with pytest.raises(InputError, match="videos/"):
    data.load_corpus(copy, use_cache=False)


def _copy_corpus(root: Path, dest: Path) -> Path:
  """Copy a corpus folder without its videos."""
  for sub in ("openface", "smile_intensities", "folds"):
    (dest / sub).mkdir(parents=True)
    for f in (root / sub).iterdir():
      (dest / sub / f.name).write_bytes(f.read_bytes())
  return dest


def test_smile_intensity_required_unless_proxy(corpus_dir, tmp_path):
  root, truth = corpus_dir
  copy = _copy_corpus(root, tmp_path / "c")
  gone = [
    copy / "smile_intensities" / f"{v}_smile_intensities.txt"
    for v in ("001_deliberate_smile_1", "006_spontaneous_smile_1")
  ]
  for p in gone:
    p.unlink()
  with pytest.raises(InputError) as info:
    data.load_corpus(copy, with_frames=False, use_cache=False)
  msg = str(info.value)
  assert "2 of 11 videos cannot be used" in msg and all(p.name in msg for p in gone) and "\n" not in msg
  corpus = data.load_corpus(copy, with_frames=False, use_cache=False, si_proxy="AU12")
  v = corpus["001_deliberate_smile_1"]
  np.testing.assert_array_equal(v.si_T, v.au_TxA[:, AU_INDEX[12]])
  assert v.meta["si_source"] == "proxy:AU12"
  with pytest.raises(ValueError):
    data.load_corpus(copy, with_frames=False, use_cache=False, si_proxy="AU99")


def test_si_length_mismatch_and_failed_frames(corpus_dir, tmp_path):
  root, truth = corpus_dir
  copy = _copy_corpus(root, tmp_path / "c")
  vid = "002_spontaneous_smile_1"
  si_path = copy / "smile_intensities" / f"{vid}_smile_intensities.txt"
  si_path.write_text("".join(si_path.read_text().splitlines(keepends=True)[:-1]))
  with pytest.raises(InputError, match=f"{si_path}.*values but .*{vid}.csv has"):
    data.load_corpus(copy, with_frames=False, use_cache=False)
  si_path.write_text("".join(f"{x:.6f}\n" for x in truth[vid]["si"]))
  # Three failed frames in one clip: filled and counted in the record's metadata.
  au = truth[vid]["au"].copy()
  success = np.ones(au.shape[0], bool)
  success[5:8] = False
  au[5:8] = 0.0
  openface.write_openface_csv(
    copy / "openface" / f"{vid}.csv", au, timestamps_T=np.arange(au.shape[0]) / 50.0, success_T=success
  )
  corpus = data.load_corpus(copy, with_frames=False, use_cache=False)
  assert corpus[vid].meta["n_interpolated"] == 3
  assert np.all(np.isfinite(corpus[vid].au_TxA)) and not np.any(corpus[vid].au_TxA[5:8] == 0.0)


def _check_split(corpus, split, fold):
  subj = lambda ids: {corpus[v].subject for v in ids}  # noqa: E731
  assert set(split.test_ids) == set(corpus.folds[fold])
  assert not subj(split.train_ids) & subj(split.val_ids)
  assert not subj(split.train_ids) & subj(split.test_ids)
  assert not subj(split.val_ids) & subj(split.test_ids)
  all_ids = list(split.train_ids) + list(split.val_ids) + list(split.test_ids)
  assert sorted(all_ids) == sorted(corpus.ids) and len(set(all_ids)) == len(all_ids)


def test_split_tiny_corpus(corpus_dir, tmp_path):
  root, _ = corpus_dir
  corpus = data.load_corpus(root, with_frames=False, use_cache=False)
  for fold in corpus.folds:
    split = corpus.split(fold, val_fraction=0.25, seed=0)
    _check_split(corpus, split, fold)
    assert len({corpus[v].subject for v in split.val_ids}) == 1  # round(0.25 * 4 training subjects)
  assert corpus.split(1, seed=3) == corpus.split(1, seed=3)
  assert corpus.split(1, val_fraction=0.0).val_ids == ()
  with pytest.raises(ValueError):
    corpus.split(4)


def _stub_corpus(folds):
  videos = {}
  for ids in folds.values():
    for vid in ids:
      subject, label = nemo.parse_video_id(vid)
      videos[vid] = data.Video(
        id=vid,
        subject=subject,
        label=label,
        fps=50.0,
        au_TxA=np.zeros((2, NUM_AUS)),
        si_T=np.zeros(2),
        frames_TxHxWxC=None,
        meta={},
      )
  return data.Corpus(root=Path("stub"), videos=dict(sorted(videos.items())), folds=folds)


def test_split_official_folds():
  corpus = _stub_corpus(nemo.read_fold_lists())
  n_val_subjects = []
  for fold in range(1, 11):
    split = corpus.split(fold, val_fraction=0.1, seed=0)
    _check_split(corpus, split, fold)
    train_subjects = {corpus[v].subject for v in split.train_ids} | {corpus[v].subject for v in split.val_ids}
    n_val_subjects.append(len({corpus[v].subject for v in split.val_ids}))
    assert n_val_subjects[-1] == round(0.1 * len(train_subjects))
  assert len(corpus.split(1).test_ids) == 124
  assert corpus.split(1, seed=0).val_ids != corpus.split(1, seed=1).val_ids


def test_sample_frame_indices():
  np.testing.assert_array_equal(sequences.sample_frame_indices(40, 5), np.arange(0, 40, 5))
  np.testing.assert_array_equal(sequences.sample_frame_indices(44, 5), list(range(0, 44, 5)) + [43])  # r = 4
  np.testing.assert_array_equal(sequences.sample_frame_indices(43, 5), np.arange(0, 43, 5))  # r = 3 < 10/3
  np.testing.assert_array_equal(sequences.sample_frame_indices(8, 3), [0, 3, 6, 7])  # r = 2 >= 2
  np.testing.assert_array_equal(sequences.sample_frame_indices(3, 5), [0])  # r = 3 < 10/3
  np.testing.assert_array_equal(sequences.sample_frame_indices(4, 5), [0, 3])
  np.testing.assert_array_equal(sequences.sample_frame_indices(7, 1), np.arange(7))
  assert sequences.default_frame_stride(50) == 5 and sequences.default_frame_stride(30) == 3
  assert sequences.default_frame_stride(5) == 1


def test_pad_to_bucket():
  rng = np.random.default_rng(0)
  arrays = [rng.normal(size=(t, 4)).astype(np.float32) for t in (3, 17, 5)]
  padded, lengths = sequences.pad_to_bucket(arrays, bucket=16)
  assert padded.shape == (3, 32, 4) and padded.dtype == np.float32
  assert lengths.dtype == np.int32 and lengths.tolist() == [3, 17, 5]
  for b, a in enumerate(arrays):
    np.testing.assert_array_equal(padded[b, : len(a)], a)
    assert not padded[b, len(a) :].any()
  padded, lengths = sequences.pad_to_bucket([np.ones((2, 3, 3), np.uint8)], bucket=8)
  assert padded.shape == (1, 8, 3, 3) and lengths.tolist() == [2]
  padded, _ = sequences.pad_to_bucket([np.ones(16)], bucket=16)
  assert padded.shape == (1, 16)
  with pytest.raises(ValueError):
    sequences.pad_to_bucket([np.ones((2, 3)), np.ones((2, 4))])
  with pytest.raises(ValueError):
    sequences.pad_to_bucket([])
