"""Everything a run needs before training, computed once and shared by all its folds: the corpus (the synthetic one
generated first when ``config.data.root`` is empty), each video's model inputs and the AUDA features (cached on disk).

Every model sees a video at the same frame indices (``sequences.sample_frame_indices``): RealSmileNet its decoded
48x48 frames, the frame-wise AUDA model the 154 frame-wise features of those frames (realsmilenet.md §2, §7).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from smilejax import auda, data, fileio, synthetic
from smilejax.errors import InputError
from smilejax.sequences import default_frame_stride, sample_frame_indices

_FEATURE_CACHE_VERSION = 1
_AUDA_SOURCES = sorted(Path(auda.__file__).parent.glob("*.py"))


@dataclasses.dataclass
class Prepared:
  """Corpus, AUDA features and inputs of every video, shared by all folds of a run."""

  corpus: data.Corpus
  dataset: str  # data.dataset_name: the config's data.dataset, "synthetic", or the corpus folder's name
  frames: dict[str, np.ndarray]  # id -> uint8 [T', 48, 48, 3]
  framewise: dict[str, np.ndarray]  # id -> float32 [T', 154] (at the frames' indices)
  auwise: dict[str, np.ndarray]  # id -> float32 [476]
  crossau: dict[str, np.ndarray]  # id -> float32 [4352]
  no_smile: dict[str, bool]
  frame_indices: dict[str, np.ndarray]  # id -> int64 [T'] (rows of the AU series the frames show)

  def inputs(self, kind: str) -> dict[str, np.ndarray]:
    """id -> model input of ``kind`` (``methods.Method.inputs``)."""
    return {"frames": self.frames, "framewise": self.framewise, "auwise": self.auwise, "crossau": self.crossau}[kind]


_PREPARED: dict[str, Prepared] = {}


def auda_options(config: Any) -> auda.AudaOptions:
  return auda.AudaOptions.from_config(config.auda)


def corpus_root(config: Any) -> tuple[Path, str]:
  """(corpus folder, dataset name). Empty ``data.root``: the synthetic corpus, generated if not there yet."""
  d = config.data
  if not str(d.root).strip() and bool(d.get("require_root", False)):
    raise InputError(f"config {config.get('name', '')!r} needs the corpus folder: --config.data.root=<folder>")
  if str(d.root).strip():
    root = Path(str(d.root)).expanduser()
    if not root.is_dir():
      raise InputError(f"{root}: corpus folder does not exist (config data.root)")
    return root, data.dataset_name(d)
  size, seed = str(d.synthetic_size), int(d.synthetic_seed)
  n_subjects = int(d.get("synthetic_subjects", 0) or 0)  # 0: the size's own subject count
  overrides = {"n_subjects": n_subjects} if n_subjects > 0 else {}
  name = f"synthetic-{size}" + (f"-n{n_subjects}" if n_subjects > 0 else "") + f"-seed{seed}"
  if str(d.get("synthetic_dir", "")).strip():
    root = Path(str(d.synthetic_dir)).expanduser()
  else:
    root = Path("~/.cache/smilejax").expanduser() / name
  return Path(synthetic.ensure_corpus(root, size=size, seed=seed, **overrides)), "synthetic"


def frame_stride(config: Any) -> int | None:
  """``data.frame_stride`` when set, else None (each video's own round(fps / 10))."""
  return int(config.data.frame_stride) if int(config.data.get("frame_stride", 0) or 0) > 0 else None


def frame_indices_of(video: data.Video, stride: int | None) -> np.ndarray:
  """The AU-series rows that match the video's sampled frames (realsmilenet.md §2, §7)."""
  idx = video.meta.get("frame_indices")
  if idx is None:
    idx = sample_frame_indices(video.n_frames, stride or default_frame_stride(video.fps))
  idx = np.asarray(idx, np.int64)
  return np.minimum(idx, video.n_frames - 1)  # a video longer than its CSV by a frame: reuse the last AU row


def _cache_dir(config: Any) -> Path | None:
  return Path(str(config.data.cache_dir)).expanduser() if str(config.data.get("cache_dir", "")).strip() else None


def prepare(config: Any) -> Prepared:
  """Load the corpus and every video's model inputs once per process (and AUDA features once per disk cache)."""
  key = json.dumps({"data": fileio.jsonable(config.data), "auda": fileio.jsonable(config.auda)}, sort_keys=True)
  if key in _PREPARED:
    return _PREPARED[key]
  root, dataset = corpus_root(config)
  cache_dir = _cache_dir(config)
  stride = frame_stride(config)
  with_video = bool(config.data.get("with_video", True))  # False: AU + SI only (no RealSmileNet)
  t0 = time.time()
  corpus = data.load_corpus(
    root,
    cache_dir=cache_dir,
    frame_size=int(config.data.frame_size),
    frame_stride=stride,
    with_frames=with_video,
    **data.loading_options(config.data),
  )
  logging.info("corpus %s: %d videos, %d folds (%.1f s)", root, len(corpus), len(corpus.folds), time.time() - t0)
  frames = {vid: v.frames_TxHxWxC for vid, v in corpus.videos.items()} if with_video else {}
  indices = {vid: frame_indices_of(v, stride) for vid, v in corpus.videos.items()}
  feats = auda_features(corpus, config, cache_dir=cache_dir if cache_dir is not None else root / ".cache")
  prepared = Prepared(
    corpus=corpus,
    dataset=dataset,
    frames=frames,
    framewise={vid: feats["frame"][vid][indices[vid]] for vid in corpus.videos},
    auwise=feats["au_wise"],
    crossau=feats["cross_au"],
    no_smile=feats["no_smile"],
    frame_indices=indices,
  )
  _PREPARED[key] = prepared
  return prepared


def _features_hash(corpus: data.Corpus, options: auda.AudaOptions) -> str:
  """Cache key of a corpus's AUDA features: options, every video's inputs and the source of the AUDA code (a cache
  written by other feature code is never read back)."""
  h = hashlib.sha256()
  h.update(
    json.dumps(
      {"v": _FEATURE_CACHE_VERSION, "options": dataclasses.asdict(options)}, sort_keys=True, default=str
    ).encode()
  )
  for path in _AUDA_SOURCES:
    h.update(path.read_bytes())
  for vid, v in corpus.videos.items():
    h.update(vid.encode())
    h.update(np.float64(v.fps).tobytes())
    h.update(np.ascontiguousarray(v.au_TxA, np.float64).tobytes())
    h.update(np.ascontiguousarray(v.si_T, np.float64).tobytes())
  return h.hexdigest()[:20]


def extract_corpus_features(ids, au, sis, fps, config: Any, *, progress: str | None = None) -> dict[str, dict]:
  """AUDA features of the videos ``ids`` batched as ``config.auda_batch`` says (``auda.extract_corpus``)."""
  b = config.auda_batch
  return auda.extract_corpus(
    ids,
    au,
    sis,
    fps,
    options=auda_options(config),
    chunk_size=int(b.chunk_size),
    workers=int(b.workers),
    bucket=int(b.bucket),
    progress=progress,
  )


def auda_features(corpus: data.Corpus, config: Any, *, cache_dir: Path | None) -> dict[str, dict]:
  """AUDA features of every video: {"frame": id -> [T, 154] (full frame rate), "au_wise": id -> [476],
  "cross_au": id -> [4352], "no_smile": id -> bool}, cached in ``cache_dir/auda-<hash>.npz``."""
  ids = list(corpus.videos)
  path = None
  if cache_dir is not None:
    path = Path(cache_dir) / f"auda-{_features_hash(corpus, auda_options(config))}.npz"
    if path.is_file():
      try:
        with np.load(path) as z:
          offsets = z["offsets"]
          frame_all = z["frame"]  # read once: every z[...] access loads the whole array again
          out = {
            "frame": {vid: frame_all[offsets[i] : offsets[i + 1]] for i, vid in enumerate(ids)},
            "au_wise": dict(zip(ids, z["au_wise"])),
            "cross_au": dict(zip(ids, z["cross_au"])),
            "no_smile": dict(zip(ids, z["no_smile"].tolist())),
          }
        logging.info("AUDA features of %d videos read from %s", len(ids), path)
        return out
      except (OSError, KeyError, ValueError) as e:
        logging.warning("%s: unreadable AUDA feature cache (%s); recomputing", path, e)
  t0 = time.time()
  v = corpus.videos
  feats = extract_corpus_features(
    ids, {i: v[i].au_TxA for i in ids}, {i: v[i].si_T for i in ids}, {i: v[i].fps for i in ids}, config
  )
  for name in ("frame", "au_wise", "cross_au"):
    bad = [i for i, a in feats[name].items() if not np.all(np.isfinite(a))]
    if bad:
      raise InputError(f"{bad[0]}: non-finite AUDA {name} features ({len(bad)} videos affected)")
  logging.info(
    "AUDA features of %d videos computed in %.1f s (%d without a detected smile)",
    len(ids),
    time.time() - t0,
    sum(feats["no_smile"].values()),
  )
  out = {k: feats[k] for k in ("frame", "au_wise", "cross_au", "no_smile")}
  if path is not None:
    try:
      fileio.atomic_write(
        path,
        lambda f: np.savez(
          f,
          offsets=np.cumsum([0] + [len(out["frame"][i]) for i in ids]),
          frame=np.concatenate([out["frame"][i] for i in ids]),
          au_wise=np.stack([out["au_wise"][i] for i in ids]),
          cross_au=np.stack([out["cross_au"][i] for i in ids]),
          no_smile=np.array([out["no_smile"][i] for i in ids]),
        ),
        binary=True,
      )
    except OSError as e:
      logging.warning("cannot write the AUDA feature cache %s (%s)", path, e)
  return out
