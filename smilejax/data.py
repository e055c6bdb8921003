"""The dataset: one :class:`Video` record per clip, a :class:`Corpus` (records + folds), subject-disjoint splits and
an on-disk cache.

Specs: ../shared/spec/architecture.md ("Dataset"), auda.md section 1 (AU + SI inputs, failed frames), realsmilenet.md
sections 2 (frame sampling, 48x48 bicubic) and 4 (padding with a length vector), 6 (subject-independent evaluation).

Reading goes through ``smilejax.io`` only: the corpus folder layout is checked by ``io.nemo.scan_dataset``, the AU
series by ``io.openface``, the smile intensity by ``io.intensity`` and the frames by ``io.video``; a video whose mp4
does not match its CSV (frame count, duration) beyond the tolerances is bad input too (``io.video.check_video_matches``).
Decoding is the slow part (a 1080p clip takes about a second), so each video's arrays are cached in ``cache_dir`` as
one ``.npz`` whose name carries a hash of its source files (names, sizes, mtimes) and of the loading options: a
second load with unchanged files reads the cache and decodes nothing.

Bad videos. :func:`load_corpus` reads every video before it judges: each one with a missing or bad file is collected
(reason = the reader's one-line error), the whole list is written to ``<cache>/bad_videos.txt`` and then, with
``on_bad_video="fail"`` (default), one InputError gives the count and the reasons; with ``"skip"`` those videos are
left out of the corpus and kept, with their reasons, in ``Corpus.skipped`` for the report (never dropped silently).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import logging

from smilejax import fileio
from smilejax.constants import AU_NAMES
from smilejax.errors import InputError
from smilejax.io import intensity as intensity_io
from smilejax.io import nemo as nemo_io
from smilejax.io import openface as openface_io
from smilejax.io import video as video_io
from smilejax.sequences import default_frame_stride, sample_frame_indices

__all__ = [
  "Video",
  "Split",
  "Corpus",
  "load_corpus",
  "load_video",
  "loading_options",
  "openface_options",
  "match_options",
  "dataset_name",
  "DATA_DEFAULTS",
  "BAD_VIDEOS_FILE",
]

# Bump when the cached arrays' meaning changes (invalidates every cache entry).
_CACHE_VERSION = 1
BAD_VIDEOS_FILE = "bad_videos.txt"  # in the cache folder: every bad video of the last load_corpus, with its reason
ON_BAD_VIDEO = ("fail", "skip")

# A config's ``data`` keys that decide how files are read and judged, with their defaults (configs/__init__.py holds
# the same numbers; these apply to a run's config.json written before the key existed). fps 0 = from the timestamps.
DATA_DEFAULTS = {
  "fps": 0.0,
  "plausible_fps": (10.0, 240.0),
  "max_gap_seconds": 0.2,
  "max_failed_fraction": 0.10,
  "max_frame_mismatch": 2,
  "max_duration_mismatch": 0.02,
  "on_bad_video": "fail",
  "au_source": "openface",  # nemo_io.AU_SOURCES: "mediapipe" = a bin/extract_aus corpus (frames from crops/<id>.npy)
}


def _get(data_cfg: Any, key: str) -> Any:
  return data_cfg.get(key, DATA_DEFAULTS[key]) if data_cfg is not None else DATA_DEFAULTS[key]


def openface_options(data_cfg: Any) -> dict:
  """Keyword arguments of ``io.openface.read_openface_csv`` from a config's ``data`` section (a ConfigDict or the
  dict of a run's config.json): fps (None = from the timestamps), fps_range, max_gap_seconds, max_failed_fraction."""
  fps = float(_get(data_cfg, "fps") or 0.0)
  if not fps >= 0:
    raise InputError(f"config data.fps (bin/extract_features --fps) must be > 0, or 0 for the timestamps' rate: {fps}")
  lo, hi = (float(x) for x in _get(data_cfg, "plausible_fps"))
  return {
    "fps": fps if fps > 0 else None,
    "fps_range": (lo, hi),
    "max_gap_seconds": float(_get(data_cfg, "max_gap_seconds")),
    "max_failed_fraction": float(_get(data_cfg, "max_failed_fraction")),
  }


def match_options(data_cfg: Any) -> dict:
  """Keyword arguments of ``io.video.check_video_matches`` (the mp4/CSV tolerances) from a config's ``data``."""
  return {
    "max_frames": int(_get(data_cfg, "max_frame_mismatch")),
    "max_duration": float(_get(data_cfg, "max_duration_mismatch")),
  }


def loading_options(data_cfg: Any) -> dict:
  """Keyword arguments of :func:`load_corpus` that a config's ``data`` section decides beyond the folder, frames
  and cache: the OpenFace reading rules, the mp4/CSV tolerances and ``on_bad_video``."""
  on_bad = str(_get(data_cfg, "on_bad_video"))
  if on_bad not in ON_BAD_VIDEO:
    raise InputError(f"config data.on_bad_video must be one of {ON_BAD_VIDEO}, got {on_bad!r}")
  au_source = str(_get(data_cfg, "au_source"))
  if au_source not in nemo_io.AU_SOURCES:
    raise InputError(f"config data.au_source must be one of {nemo_io.AU_SOURCES}, got {au_source!r}")
  m = match_options(data_cfg)
  return {
    "au_source": au_source,
    **openface_options(data_cfg),
    "max_frame_mismatch": m["max_frames"],
    "max_duration_mismatch": m["max_duration"],
    "on_bad_video": on_bad,
  }


def dataset_name(data_cfg: Any) -> str:
  """The dataset's name in reports: ``data.dataset`` when set; else "synthetic" for the built-in corpus (empty
  ``data.root``, or a folder written by ``smilejax.synthetic``, which holds generator.json); else the corpus
  folder's name."""
  name = str(data_cfg.get("dataset", "") or "").strip()
  if name:
    return name
  root = str(data_cfg.get("root", "") or "").strip()
  if not root:
    return "synthetic"
  folder = Path(root).expanduser()
  if (folder / "generator.json").is_file():
    return "synthetic"
  return folder.resolve().name or str(folder)


@dataclasses.dataclass
class Video:
  """One clip.

  au_TxA: float64 [T, 17] OpenFace AU intensities (constants order; failed frames filled, auda.md section 1).
  si_T: float64 [T] smile intensity, one value per frame (or the flagged proxy, see ``meta["si_source"]``).
  frames_TxHxWxC: uint8 [T', S, S, 3], the frames at ``meta["frame_indices"]`` (every ``frame_stride``-th, see
    :func:`sample_frame_indices`) resized to S x S (bicubic); None when loaded with ``with_frames=False``.
  fps: the AU series' frame rate (data.fps when given, else from the OpenFace timestamps).
  meta: JSON-able facts: n_frames, n_interpolated, openface_fps, si_source, and with frames: video_fps,
    n_video_frames, frame_stride, frame_indices.
  """

  id: str
  subject: str
  label: int
  fps: float
  au_TxA: np.ndarray
  si_T: np.ndarray
  frames_TxHxWxC: np.ndarray | None
  meta: dict

  @property
  def n_frames(self) -> int:
    return int(self.au_TxA.shape[0])


@dataclasses.dataclass(frozen=True)
class Split:
  """Ids of one cross-validation fold: test = fold k; train and validation = the other folds, split by subject."""

  fold: int
  train_ids: tuple[str, ...]
  val_ids: tuple[str, ...]
  test_ids: tuple[str, ...]


@dataclasses.dataclass
class Corpus:
  """Video records (id -> Video, sorted by id), the folds (k -> sorted ids, as listed) and the videos left out as bad
  input (id -> reason, ``on_bad_video="skip"``; they are in the folds but not in ``videos``)."""

  root: Path
  videos: dict[str, Video]
  folds: dict[int, list[str]]
  skipped: dict[str, str] = dataclasses.field(default_factory=dict)

  @property
  def ids(self) -> list[str]:
    return list(self.videos)

  def __len__(self) -> int:
    return len(self.videos)

  def __getitem__(self, video_id: str) -> Video:
    return self.videos[video_id]

  def fold_of(self, video_id: str) -> int:
    for k, ids in self.folds.items():
      if video_id in ids:
        return k
    raise KeyError(video_id)

  def labels(self, ids: Sequence[str]) -> np.ndarray:
    """int32 [N] labels (0 posed, 1 spontaneous) of ``ids``."""
    return np.array([self.videos[v].label for v in ids], dtype=np.int32)

  def split(self, fold: int, *, val_fraction: float = 0.1, seed: int = 0) -> Split:
    """Subject-independent split for fold ``fold`` (realsmilenet.md section 6).

    test = the ids of fold ``fold``; the other folds' ids form the training pool; its distinct subjects are
    sorted and ``n_val = round(val_fraction * n_subjects)`` of them (at least 1 when ``val_fraction > 0``, at
    most n_subjects - 1) are drawn with ``np.random.default_rng(seed).choice(..., replace=False)``; their ids
    are the validation set, the rest the training set. No subject is in two of the three sets.
    """
    if fold not in self.folds:
      raise ValueError(f"fold {fold} not in the corpus folds {sorted(self.folds)}")
    if not 0.0 <= val_fraction < 1.0:
      raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    test = sorted(v for v in self.folds[fold] if v in self.videos)
    pool = sorted(v for k, ids in self.folds.items() if k != fold for v in ids if v in self.videos)
    subjects = sorted({self.videos[v].subject for v in pool})
    n_val = 0
    if val_fraction > 0 and len(subjects) > 1:
      n_val = min(max(1, int(round(val_fraction * len(subjects)))), len(subjects) - 1)
    rng = np.random.default_rng(seed)
    val_subjects = set(rng.choice(np.array(subjects), size=n_val, replace=False).tolist()) if n_val else set()
    val = [v for v in pool if self.videos[v].subject in val_subjects]
    train = [v for v in pool if self.videos[v].subject not in val_subjects]
    test_subjects = {self.videos[v].subject for v in test}
    overlap = test_subjects & {self.videos[v].subject for v in pool}
    if overlap:  # read_fold_lists already refuses such folds; this guards folds given by hand.
      raise InputError(
        f"{self.root}: subject(s) {', '.join(sorted(overlap))} in fold {fold} and in another "
        "fold; folds must be subject-independent"
      )
    return Split(fold=fold, train_ids=tuple(train), val_ids=tuple(val), test_ids=tuple(test))


def _decode_sampled(
  path: Path, *, frame_size: int, frame_stride: int | None, fallback_fps: float
) -> tuple[np.ndarray, dict]:
  """Decode ``path`` keeping only the sampled frames, resized in chunks as they arrive (memory stays small; one
  resize call per chunk rather than per frame, since tiny matrix products are dominated by BLAS overhead)."""
  chunk = 16
  reader = video_io.VideoReader(path)
  pending_i: list[int] = []
  pending: list[np.ndarray] = []
  kept: dict[int, np.ndarray] = {}

  def flush():
    if pending:
      for i, small in zip(pending_i, video_io.resize_frames(np.stack(pending), frame_size)):
        kept[i] = small
      pending_i.clear()
      pending.clear()

  last: tuple[int, np.ndarray] | None = None
  stride = frame_stride
  for i, frame in enumerate(reader):
    if stride is None:
      stride = default_frame_stride(reader.fps or fallback_fps)
    if i % stride == 0:
      pending_i.append(i)
      pending.append(frame)
      if len(pending) == chunk:
        flush()
    else:
      last = (i, frame)  # the last frame may be needed too, known only at the end
  n = reader.n_frames
  idx = sample_frame_indices(n, stride)
  if last is not None and last[0] == n - 1 and (n - 1) in idx.tolist():
    pending_i.append(n - 1)
    pending.append(last[1])
  flush()
  frames = np.stack([kept[int(i)] for i in idx])
  meta = {
    "video_fps": float(reader.fps),
    "n_video_frames": int(n),
    "frame_stride": int(stride),
    "frame_indices": idx.tolist(),
  }
  return frames, meta


def crop_frames(
  crops_TxHxWxC: np.ndarray, *, fps: float, frame_stride: int | None, frame_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
  """RealSmileNet's frames from a bin/extract_aus crops array (one crop per CSV frame): the crops at
  ``sequences.sample_frame_indices`` (stride ``frame_stride``, else round(fps / 10)), resized to ``frame_size`` only
  when they are another size. Returns (uint8 [T', S, S, 3], the indices, the stride)."""
  stride = frame_stride or default_frame_stride(fps)
  idx = sample_frame_indices(crops_TxHxWxC.shape[0], stride)
  frames = np.ascontiguousarray(crops_TxHxWxC[idx])
  if frames.shape[1:3] != (frame_size, frame_size):
    frames = video_io.resize_frames(frames, frame_size)
  return frames, idx, int(stride)


def load_video(
  video_id: str,
  *,
  openface_path: Path,
  si_path: Path | None,
  video_path: Path | None,
  frame_size: int = 48,
  frame_stride: int | None = None,
  with_frames: bool = True,
  si_proxy: str | None = None,
  fps: float | None = None,
  fps_range: tuple[float, float] = (10.0, 240.0),
  max_gap_seconds: float = 0.2,
  max_failed_fraction: float = 0.10,
  max_frame_mismatch: int = 2,
  max_duration_mismatch: float = 0.02,
  crops_path: Path | None = None,
) -> Video:
  """Read one clip's files into a :class:`Video` (no cache). See :func:`load_corpus` for the options; with
  ``crops_path`` (a bin/extract_aus corpus) the frames are its crops at the sampled indices, not the mp4's."""
  subject, label = nemo_io.parse_video_id(video_id)
  of = openface_io.read_openface_csv(
    openface_path,
    fps=fps,
    fps_range=fps_range,
    max_gap_seconds=max_gap_seconds,
    max_failed_fraction=max_failed_fraction,
  )
  meta: dict = {"n_frames": of.n_frames, "n_interpolated": int(of.n_interpolated), "openface_fps": of.fps}
  if si_proxy is not None:
    si_T = of.au_TxA[:, intensity_io.si_proxy_column(si_proxy)].copy()
    meta["si_source"] = f"proxy:{AU_NAMES[intensity_io.si_proxy_column(si_proxy)]}"
  else:
    if si_path is None:
      raise InputError(
        f"{video_id}: no smile-intensity file (SI is required, auda.md section 1; "
        "si_proxy='AU12' is an explicit, flagged substitute)"
      )
    si_T = intensity_io.read_smile_intensity(si_path)
    meta["si_source"] = "file"
    if si_T.shape[0] != of.n_frames:
      raise InputError(
        f"{si_path}: {si_T.shape[0]} smile-intensity values but {openface_path} has {of.n_frames} frames"
      )
  frames = None
  if with_frames and crops_path is not None:
    frames, idx, stride = crop_frames(
      nemo_io.read_crops(crops_path, of.n_frames), fps=of.fps, frame_stride=frame_stride, frame_size=frame_size
    )
    meta.update(video_fps=of.fps, n_video_frames=of.n_frames, frame_stride=int(stride), frame_indices=idx.tolist())
  elif with_frames:
    if video_path is None:
      raise InputError(f"{video_id}: no video file (needed for frames; load with with_frames=False to skip)")
    frames, video_meta = _decode_sampled(
      video_path, frame_size=frame_size, frame_stride=frame_stride, fallback_fps=of.fps
    )
    meta.update(video_meta)
    video_io.check_video_matches(
      video_path,
      video_meta["n_video_frames"],
      video_meta["video_fps"],
      openface_path,
      of.n_frames,
      of.fps,
      max_frames=max_frame_mismatch,
      max_duration=max_duration_mismatch,
    )
    if video_meta["n_video_frames"] != of.n_frames:
      logging.warning("%s: video has %d frames, OpenFace CSV %d", video_id, video_meta["n_video_frames"], of.n_frames)
    if abs(video_meta["video_fps"] - of.fps) > 0.01 * video_meta["video_fps"]:
      logging.warning(
        "%s: video frame rate %.3f differs from the OpenFace timestamps' %.3f",
        video_id,
        video_meta["video_fps"],
        of.fps,
      )
  return Video(
    id=video_id,
    subject=subject,
    label=label,
    fps=float(of.fps),
    au_TxA=of.au_TxA,
    si_T=np.asarray(si_T, dtype=np.float64),
    frames_TxHxWxC=frames,
    meta=meta,
  )


_READ_DEFAULTS = {k: v for k, v in loading_options(None).items() if k not in ("on_bad_video", "au_source")}


def _file_signature(path: Path | None) -> list:
  if path is None:
    return [None]
  st = path.stat()
  return [path.name, st.st_size, st.st_mtime_ns]


def _cache_names(video_id: str, sources: list[Path | None], options: dict) -> tuple[str, str]:
  """(file name, prefix shared by entries of the same id and options)."""
  opt_hash = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
  src = json.dumps([_file_signature(p) for p in sources])
  src_hash = hashlib.sha256(src.encode()).hexdigest()[:16]
  prefix = f"{video_id}.{opt_hash}."
  return prefix + src_hash + ".npz", prefix


def _load_cached(path: Path, video_id: str) -> Video | None:
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(str(z["meta"]))
      frames = z["frames"] if "frames" in z.files else None
      subject, label = nemo_io.parse_video_id(video_id)
      return Video(
        id=video_id,
        subject=subject,
        label=label,
        fps=float(z["fps"]),
        au_TxA=z["au_TxA"],
        si_T=z["si_T"],
        frames_TxHxWxC=frames,
        meta=meta,
      )
  except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:  # a damaged entry: rebuild it
    logging.warning("%s: unreadable cache entry (%s); rebuilding", path, err)
    return None


def _save_cached(path: Path, prefix: str, video: Video) -> None:
  arrays = {
    "au_TxA": video.au_TxA,
    "si_T": video.si_T,
    "fps": np.float64(video.fps),
    "meta": np.array(json.dumps(video.meta)),
  }
  if video.frames_TxHxWxC is not None:
    arrays["frames"] = video.frames_TxHxWxC
  fileio.atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)
  for old in path.parent.glob(prefix + "*.npz"):  # entries of older versions of the same files
    if old != path:
      old.unlink(missing_ok=True)


def load_corpus(
  root: str | os.PathLike,
  *,
  cache_dir: str | os.PathLike | None = None,
  use_cache: bool = True,
  frame_size: int = 48,
  frame_stride: int | None = None,
  progress: bool = True,
  with_frames: bool = True,
  si_proxy: str | None = None,
  on_bad_video: str = "fail",
  au_source: str = "openface",
  **read_options: Any,
) -> Corpus:
  """Load every video of the folds of the corpus folder ``root`` (layout: ``smilejax.io.nemo``).

  Args:
    cache_dir: where per-video ``.npz`` entries live (default ``<root>/.cache``; if it cannot be created the
      corpus is loaded without a cache, with a warning). ``use_cache=False`` neither reads nor writes it.
    frame_size: S of the S x S frames. frame_stride: keep every k-th frame (None: round(video fps / 10)).
    with_frames: False skips video decoding (``frames_TxHxWxC`` = None; videos need not exist).
    si_proxy: None (SI files required) or an AU name such as ``"AU12"`` whose series stands in for SI; flagged in
      ``Video.meta["si_source"]`` (auda.md section 1: never a silent substitute).
    on_bad_video: "fail" or "skip" (module docstring: Bad videos).
    au_source: who wrote the CSVs (``io.nemo.AU_SOURCES``): "openface", or "mediapipe" for a bin/extract_aus corpus,
      whose frames come from ``crops/<id>.npy`` (no mp4 decoding); the sidecars must agree (``io.nemo``).
    read_options: :func:`load_video`'s rules (fps, fps_range, max_gap_seconds, max_failed_fraction,
      max_frame_mismatch, max_duration_mismatch); :func:`loading_options` builds them from a config.
  Raises InputError (one line) naming every missing or bad file at once (``on_bad_video="fail"``).
  """
  root = Path(root)
  read_options = {**_READ_DEFAULTS, **read_options}  # the same options, the same cache entries
  if on_bad_video not in ON_BAD_VIDEO:
    raise ValueError(f"on_bad_video must be one of {ON_BAD_VIDEO}, got {on_bad_video!r}")
  if si_proxy is not None:
    intensity_io.si_proxy_column(si_proxy)  # fail early on a bad name
  crops = au_source == "mediapipe" and with_frames
  files = nemo_io.scan_dataset(
    root,
    require_video=with_frames and not crops,
    require_si=si_proxy is None,
    missing_ok=True,
    au_source=au_source,
    require_crops=crops,
  )
  options = {
    "v": _CACHE_VERSION,
    "frame_size": int(frame_size),
    "frame_stride": frame_stride,
    "with_frames": bool(with_frames),
    "si_proxy": si_proxy,
    **{k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(read_options.items())},
    **({"au_source": au_source} if au_source != "openface" else {}),  # default entries keep their names
  }
  cache: Path | None = None
  if use_cache:
    cache = Path(cache_dir) if cache_dir is not None else root / ".cache"
    try:
      cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
      logging.warning("cannot create cache folder %s (%s); loading without a cache", cache, err)
      cache = None
  videos: dict[str, Video] = {}
  bad = {vid: f"{root}: missing {', '.join(parts)}" for vid, parts in files.missing.items()}
  n = len(files.ids)
  n_cached = 0
  next_report = 0.1
  for i, vid in enumerate(files.ids):
    if vid in bad:
      continue
    sources = [
      files.openface_paths[vid],
      files.si_paths[vid] if si_proxy is None else None,
      (files.crop_paths[vid] if crops else files.video_paths[vid]) if with_frames else None,
    ]
    video = None
    if cache is not None:
      name, prefix = _cache_names(vid, sources, options)
      if (cache / name).is_file():
        video = _load_cached(cache / name, vid)
        n_cached += video is not None
    if video is None:
      try:
        video = load_video(
          vid,
          openface_path=files.openface_paths[vid],
          si_path=files.si_paths[vid],
          video_path=files.video_paths[vid],
          frame_size=frame_size,
          frame_stride=frame_stride,
          with_frames=with_frames,
          si_proxy=si_proxy,
          crops_path=files.crop_paths[vid] if crops else None,
          **read_options,
        )
      except InputError as err:
        bad[vid] = str(err)
        logging.warning("bad video %s: %s", vid, err)
        continue
      if cache is not None:
        try:
          _save_cached(cache / name, prefix, video)
        except OSError as err:
          logging.warning("cannot write cache entry %s (%s)", cache / name, err)
    videos[vid] = video
    if progress and (i + 1) / n >= next_report:
      logging.info("load_corpus %s: %d/%d videos (%d from cache)", root, i + 1, n, n_cached)
      while (i + 1) / n >= next_report:
        next_report += 0.1
  _report_bad_videos(root, cache, dict(sorted(bad.items())), n, on_bad_video)
  n_interp = sum(v.meta["n_interpolated"] for v in videos.values())
  if n_interp:
    logging.info(
      "load_corpus %s: %d failed OpenFace frames filled by interpolation in %d videos",
      root,
      n_interp,
      sum(v.meta["n_interpolated"] > 0 for v in videos.values()),
    )
  if si_proxy is not None:
    logging.warning("load_corpus %s: smile intensity replaced by the proxy %s (flagged in Video.meta)", root, si_proxy)
  folds = {k: list(ids) for k, ids in files.folds.items()}
  return Corpus(root=root, videos=dict(sorted(videos.items())), folds=folds, skipped=dict(sorted(bad.items())))


def _report_bad_videos(root: Path, cache: Path | None, bad: dict[str, str], n: int, on_bad_video: str) -> None:
  """Write every bad video with its reason to ``<cache>/bad_videos.txt`` (a stale list is removed when there are
  none); then fail with one line (count, the first reasons, the list's path) unless ``on_bad_video == "skip"``."""
  listing = cache / BAD_VIDEOS_FILE if cache is not None else None
  if listing is not None:
    try:
      if bad:
        fileio.write_text(listing, "id\treason\n" + "".join(f"{v}\t{r}\n" for v, r in bad.items()))
      else:
        listing.unlink(missing_ok=True)
    except OSError as err:
      logging.warning("cannot write %s (%s)", listing, err)
      listing = None
  if not bad:
    return
  where = f"all listed in {listing}" if listing is not None else "not listed: no cache folder"
  if on_bad_video == "skip":
    logging.warning(
      "load_corpus %s: %d of %d videos left out as bad input (data.on_bad_video = skip; %s): %s",
      root,
      len(bad),
      n,
      where,
      ", ".join(bad),
    )
    return
  shown = list(bad.values()) if listing is None else list(bad.values())[:5]
  more = f"; and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
  raise InputError(
    f"{root}: {len(bad)} of {n} videos cannot be used ({where}; --config.data.on_bad_video=skip leaves them out): "
    + "; ".join(shown)
    + more
  )
