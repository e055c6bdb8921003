"""The paper's experiment: per fold, train the four models and both late fusions, time them, write the results
(spec ``realsmilenet.md`` §6-§8; paper Table 1).

One fold (``run_fold``):

1. the corpus (``data.load_corpus``; the synthetic corpus is generated first when ``config.data.root`` is empty) and
   the AUDA features of every video (``auda.extract_batch``, computed once and cached on disk next to the corpus
   cache, keyed by the AUDA options and a hash of the AU/SI arrays); frame-wise features are sampled at the same
   frame indices as the video frames (every ``stride``-th, ``data.sample_frame_indices``);
2. the subject-independent split (``Corpus.split``: test = fold k, inner validation subjects drawn from the training
   subjects with ``config.seed``);
3. ``train.fit`` for RealSmileNet, AUDA frame-wise, AU-wise, cross-AU (features of the three splits kept in
   evaluation mode), then the two fusion heads on the frozen models' concatenated final-branch features;
4. time per video (``time_methods``): whole-video inference, batch 1, median over the fold's test videos after a
   warm-up pass; from decoded 48x48 frames (RealSmileNet) and AU + SI series (AUDA: the feature extraction is
   included) to the probability; a fusion includes every contributing model (and the AUDA extraction once);
5. ``predictions.csv`` and, last and atomically, ``fold_result.json``.

All folds (``run_all_folds``): finished folds (``fold_result.json`` present) are skipped, an interrupted fold resumes
from its checkpoints, a failing fold leaves a ``FAILED`` file and the others still run, then ``report.write_report``.
Compiled steps are shared by all folds of a process (``train.get_steps`` caches them).

Workdir layout (what ``smilejax.report`` and notebooks read)::

    <workdir>/config.json                        the run config; "folds" = every fold requested so far
    <workdir>/fold_03/<method>/                  config.json, metrics.jsonl, checkpoints/, standardizer.npz (AUDA)
    <workdir>/fold_03/predictions.csv            id, subject, label, fold, one P(spontaneous) column per method
    <workdir>/fold_03/fold_result.json           fold, accuracy{method}, ms_per_video{method}, n_test, n_train,
                                                 n_val, no_smile_detected (test videos), selected_epoch{method},
                                                 backend, dataset, seed, wall_s -- written last: presence = done
    <workdir>/fold_03/FAILED                     one line: why the fold failed (removed when it later succeeds)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging

from smilejax import constants as C
from smilejax import train
from smilejax.errors import InputError

METHODS: tuple[str, ...] = ("realsmilenet", "framewise", "auwise", "crossau", "fusion_auda", "fusion_all")
METHOD_NAMES: dict[str, str] = {
    "realsmilenet": "RealSmileNet",
    "framewise": "AUDA (frame-wise)",
    "auwise": "AUDA (AU-wise)",
    "crossau": "AUDA (cross-AU)",
    "fusion_auda": "Fusion of AUDA features",
    "fusion_all": "Fusion of all features",
}
BASE_METHODS: tuple[str, ...] = METHODS[:4]
FUSION_METHODS: tuple[str, ...] = METHODS[4:]
AUDA_METHODS: tuple[str, ...] = ("framewise", "auwise", "crossau")
# Config keys whose change does not invalidate finished folds (they do not affect any trained model or accuracy).
RESUME_IGNORED_KEYS: tuple[str, ...] = ("folds", "timing", "name")

_FEATURE_CACHE_VERSION = 1


def fold_dir(workdir: str | os.PathLike, fold: int) -> Path:
  return Path(workdir) / f"fold_{int(fold):02d}"


def enable_compile_cache(path: str) -> None:
  """Persist compiled XLA programs in ``path`` ('' = off), so a rerun or a resumed run skips most compilation."""
  if not path:
    return
  cache = Path(path).expanduser()
  try:
    cache.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    logging.warning("compile cache %s unavailable (%s)", cache, e)
    return
  jax.config.update("jax_compilation_cache_dir", str(cache))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run_methods(config: Any) -> tuple[str, ...]:
  """The methods a run trains, in ``METHODS`` order: ``config.methods`` (default all six).

  A dataset without videos (``data.with_video = False``, e.g. the AUDA replication data) has only the AUDA methods
  and their fusion. Raises InputError for an unknown method, a fusion without its members, or a video method
  without videos.
  """
  wanted = tuple(str(m) for m in (config.get("methods", None) or METHODS))
  unknown = [m for m in wanted if m not in METHODS]
  if unknown:
    raise InputError(f"config methods: unknown {unknown} (known: {', '.join(METHODS)})")
  methods = tuple(m for m in METHODS if m in wanted)
  for m in methods:
    if m in FUSION_METHODS:
      missing = [k for k in config.models[m].members if k not in methods]
      if missing:
        raise InputError(f"config methods: {m} needs its members {missing} in the run")
  if not bool(config.data.get("with_video", True)) and "realsmilenet" in methods:
    raise InputError("config methods: realsmilenet needs videos, but data.with_video is False (configs/auda_package.py "
                     "runs the AUDA methods only)")
  return methods


def format_fold_result(result: Mapping[str, Any]) -> str:
  """A few lines for the terminal: accuracy and ms per video of each method on one fold."""
  lines = [f"fold {result['fold']} ({result['n_test']} test videos, {result['wall_s']:.0f} s):"]
  for m in (m for m in METHODS if m in result["accuracy"]):
    ms = result["ms_per_video"].get(m)
    lines.append(f"  {METHOD_NAMES[m]:<26} {100 * result['accuracy'][m]:5.1f} %"
                 + (f"  {ms:8.1f} ms/video" if ms is not None else ""))
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ the data


@dataclasses.dataclass
class Prepared:
  """Corpus, AUDA features and inputs of every video, shared by all folds of a run."""

  corpus: Any
  dataset: str                        # "synthetic" | "uvanemo" (or the config's data.dataset)
  frames: dict[str, np.ndarray]       # id -> uint8 [T', 48, 48, 3]
  framewise: dict[str, np.ndarray]    # id -> float32 [T', 154] (sampled like the frames)
  auwise: dict[str, np.ndarray]       # id -> float32 [476]
  crossau: dict[str, np.ndarray]      # id -> float32 [4352]
  no_smile: dict[str, bool]
  frame_indices: dict[str, np.ndarray]


_PREPARED: dict[str, Prepared] = {}


def corpus_root(config: Any) -> tuple[Path, str]:
  """(corpus folder, dataset name). Empty ``data.root``: the synthetic corpus, generated if not there yet."""
  d = config.data
  if not str(d.root).strip() and bool(d.get("require_root", False)):
    raise InputError(f"config {config.get('name', '')!r} needs the corpus folder: --config.data.root=<folder>")
  if str(d.root).strip():
    root = Path(str(d.root)).expanduser()
    if not root.is_dir():
      raise InputError(f"{root}: corpus folder does not exist (config data.root)")
    return root, str(d.get("dataset", "") or "uvanemo")
  from smilejax import synthetic  # lazy: only the synthetic path needs the generator
  size, seed = str(d.synthetic_size), int(d.synthetic_seed)
  n_subjects = int(d.get("synthetic_subjects", 0) or 0)  # 0: the size's own subject count
  overrides = {"n_subjects": n_subjects} if n_subjects > 0 else {}
  name = f"synthetic-{size}" + (f"-n{n_subjects}" if n_subjects > 0 else "") + f"-seed{seed}"
  root = Path(str(d.synthetic_dir)).expanduser() if str(d.get("synthetic_dir", "")).strip() else \
      Path("~/.cache/smilejax").expanduser() / name
  return Path(synthetic.ensure_corpus(root, size=size, seed=seed, **overrides)), "synthetic"


def _data_key(config: Any) -> str:
  return json.dumps({"data": train._jsonable(config.data), "auda": train._jsonable(config.auda)}, sort_keys=True)


def prepare(config: Any) -> Prepared:
  """Load the corpus and every video's model inputs once per process (and AUDA features once per disk cache)."""
  key = _data_key(config)
  if key in _PREPARED:
    return _PREPARED[key]
  from smilejax import data as data_lib  # lazy: the readers are only needed here
  root, dataset = corpus_root(config)
  d = config.data
  cache_dir = Path(str(d.cache_dir)).expanduser() if str(d.get("cache_dir", "")).strip() else None
  stride = int(d.frame_stride) if int(d.get("frame_stride", 0) or 0) > 0 else None
  t0 = time.time()
  with_video = bool(d.get("with_video", True))  # False: AU + SI only (no RealSmileNet), e.g. the AUDA package
  corpus = data_lib.load_corpus(root, cache_dir=cache_dir, frame_size=int(d.frame_size), frame_stride=stride,
                                with_frames=with_video)
  logging.info("corpus %s: %d videos, %d folds (%.1f s)", root, len(corpus), len(corpus.folds), time.time() - t0)
  frames, indices = {}, {}
  for vid, v in corpus.videos.items():
    if with_video:
      frames[vid] = v.frames_TxHxWxC
    indices[vid] = frame_indices_of(v, stride)
  feats = auda_features(corpus, config, cache_dir=cache_dir if cache_dir is not None else root / ".cache")
  framewise = {vid: feats["frame"][vid][indices[vid]] for vid in corpus.videos}
  prepared = Prepared(corpus=corpus, dataset=dataset, frames=frames, framewise=framewise,
                      auwise=feats["au_wise"], crossau=feats["cross_au"], no_smile=feats["no_smile"],
                      frame_indices=indices)
  _PREPARED[key] = prepared
  return prepared


def frame_indices_of(video: Any, stride: int | None) -> np.ndarray:
  """The AU-series rows that match the video's sampled frames (same indices as the frames, spec §2, §7)."""
  from smilejax import data as data_lib
  idx = video.meta.get("frame_indices")
  if idx is None:
    s = stride or data_lib.default_frame_stride(video.fps)
    idx = data_lib.sample_frame_indices(video.n_frames, s)
  idx = np.asarray(idx, np.int64)
  return np.minimum(idx, video.n_frames - 1)  # a video longer than its CSV by a frame: reuse the last AU row


def _auda_options(config: Any):
  from smilejax import auda
  return auda.AudaOptions.from_config(config.auda)


def _features_hash(corpus: Any, options: Any) -> str:
  """Cache key of a corpus's AUDA features: options, every video's inputs and the source of smilejax/auda.py (so a
  cache written by other feature code, e.g. a float32 summation order changed since, is never read back)."""
  from smilejax import auda
  h = hashlib.sha256()
  h.update(json.dumps({"v": _FEATURE_CACHE_VERSION, "options": dataclasses.asdict(options)}, sort_keys=True,
                      default=str).encode())
  h.update(Path(auda.__file__).read_bytes())
  for vid, v in corpus.videos.items():
    h.update(vid.encode())
    h.update(np.float64(v.fps).tobytes())
    h.update(np.ascontiguousarray(v.au_TxA, np.float64).tobytes())
    h.update(np.ascontiguousarray(v.si_T, np.float64).tobytes())
  return h.hexdigest()[:20]


def _auda_batched(ids: Sequence[str], au: Mapping[str, np.ndarray], sis: Mapping[str, np.ndarray],
                  fps: Mapping[str, float], config: Any, options: Any, *, progress: str | None = None) -> dict:
  """AUDA features of many videos, batched as the configs' ``auda_batch`` says: videos of one frame rate, in order
  of length, zero-padded together, ``chunk_size`` x ``workers`` of them per ``extract_batch`` call (one progress
  line each when ``progress`` names the task). Returns {"frame", "phases", "au_wise", "cross_au", "no_smile"}:
  id -> array."""
  from smilejax import auda
  chunk, workers = int(config.auda_batch.chunk_size), int(config.auda_batch.workers)
  step = max(1, chunk) * max(1, workers)
  by_fps: dict[float, list[str]] = {}
  for vid in ids:
    by_fps.setdefault(float(fps[vid]), []).append(vid)
  out = {k: {} for k in ("frame", "phases", "au_wise", "cross_au", "no_smile")}
  t0, done = time.time(), 0
  for rate, group in by_fps.items():
    group = sorted(group, key=lambda v: len(sis[v]))  # calls of similar lengths: fewer shapes to compile
    for g0 in range(0, len(group), step):
      part = group[g0:g0 + step]
      lengths = np.array([len(sis[v]) for v in part], np.int64)
      a = np.zeros((len(part), int(lengths.max()), au[part[0]].shape[1]), np.float32)
      si = np.zeros((len(part), int(lengths.max())), np.float64)
      for b, v in enumerate(part):
        a[b, :lengths[b]] = au[v]
        si[b, :lengths[b]] = sis[v]
      f = auda.extract_batch(a, si, lengths, fps=rate, options=options, names=part,
                             bucket=int(config.auda_batch.bucket), chunk_size=chunk, workers=workers)
      for b, v in enumerate(part):
        n = lengths[b]
        out["frame"][v] = np.asarray(f.frame_BxTxD[b, :n], np.float32)
        out["phases"][v] = np.asarray(f.phases_BxT[b, :n], np.int8)
        out["au_wise"][v] = np.asarray(f.au_wise_BxD[b], np.float32)
        out["cross_au"][v] = np.asarray(f.cross_au_BxD[b], np.float32)
        out["no_smile"][v] = bool(f.no_smile_detected_B[b])
      done += len(part)
      if progress:
        logging.info("%s: %d/%d videos (%.1f s)", progress, done, len(ids), time.time() - t0)
  return out


def auda_features(corpus: Any, config: Any, *, cache_dir: Path | None) -> dict[str, dict]:
  """AUDA features of every video: {"frame": id -> [T, 154] (full frame rate), "au_wise": id -> [476],
  "cross_au": id -> [4352], "no_smile": id -> bool}, cached in ``cache_dir/auda-<hash>.npz``."""
  options = _auda_options(config)
  ids = list(corpus.videos)
  path = None
  if cache_dir is not None:
    path = Path(cache_dir) / f"auda-{_features_hash(corpus, options)}.npz"
    if path.is_file():
      try:
        with np.load(path) as z:
          offsets = z["offsets"]
          frame_all = z["frame"]  # read once: every z[...] access loads the whole array again
          frame = {vid: frame_all[offsets[i]:offsets[i + 1]] for i, vid in enumerate(ids)}
          out = {"frame": frame, "au_wise": dict(zip(ids, z["au_wise"])), "cross_au": dict(zip(ids, z["cross_au"])),
                 "no_smile": dict(zip(ids, z["no_smile"].tolist()))}
          logging.info("AUDA features of %d videos read from %s", len(ids), path)
          return out
      except (OSError, KeyError, ValueError) as e:
        logging.warning("%s: unreadable AUDA feature cache (%s); recomputing", path, e)
  t0 = time.time()
  feats = _auda_batched(ids, {v: corpus.videos[v].au_TxA for v in ids}, {v: corpus.videos[v].si_T for v in ids},
                        {v: corpus.videos[v].fps for v in ids}, config, options)
  frame, au_wise, cross_au, no_smile = (feats[k] for k in ("frame", "au_wise", "cross_au", "no_smile"))
  for name, d in (("frame", frame), ("au_wise", au_wise), ("cross_au", cross_au)):
    bad = [v for v, a in d.items() if not np.all(np.isfinite(a))]
    if bad:
      raise InputError(f"{bad[0]}: non-finite AUDA {name} features ({len(bad)} videos affected)")
  logging.info("AUDA features of %d videos computed in %.1f s (%d without a detected smile)", len(ids),
               time.time() - t0, sum(no_smile.values()))
  if path is not None:
    offsets = np.cumsum([0] + [len(frame[v]) for v in ids])
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      train._atomic_write(path, lambda f: np.savez(
          f, offsets=offsets, frame=np.concatenate([frame[v] for v in ids]),
          au_wise=np.stack([au_wise[v] for v in ids]), cross_au=np.stack([cross_au[v] for v in ids]),
          no_smile=np.array([no_smile[v] for v in ids])), binary=True)
    except OSError as e:
      logging.warning("cannot write the AUDA feature cache %s (%s)", path, e)
  return {"frame": frame, "au_wise": au_wise, "cross_au": cross_au, "no_smile": no_smile}


def method_inputs(prepared: Prepared, method: str) -> dict[str, np.ndarray]:
  return {"realsmilenet": prepared.frames, "framewise": prepared.framewise, "auwise": prepared.auwise,
          "crossau": prepared.crossau}[method]


def split_examples(prepared: Prepared, method: str, ids: Sequence[str]) -> train.Examples | None:
  """Inputs of ``ids`` for a base model: a list of sequences (frames, frame-wise) or a stacked [N, D] array."""
  if not ids:
    return None
  src = method_inputs(prepared, method)
  x = [src[v] for v in ids]
  if method in ("auwise", "crossau"):
    x = np.stack(x)
  return train.Examples(x, prepared.corpus.labels(ids), tuple(ids))


def fold_split(prepared: Prepared, config: Any, fold: int):
  """The fold's split; with selection "fixed" there is no validation split (all training subjects train)."""
  fixed = str(config.train.selection) == "fixed"
  return prepared.corpus.split(fold, val_fraction=0.0 if fixed else float(config.train.val_fraction),
                               seed=int(config.seed))


def model_seed(config: Any, fold: int, method: str) -> int:
  """Initialisation / shuffling / dropout seed of one model on one fold (fixed by config.seed)."""
  return int(config.seed) * 100_000 + int(fold) * 100 + METHODS.index(method)


# -------------------------------------------------------------------------------------------------------- fitting


def fit_method(config: Any, prepared: Prepared, fold: int, method: str, split: Any, workdir: str | os.PathLike,
               members: Mapping[str, train.FitResult] | None = None) -> train.FitResult:
  """Train (or resume, or reload) one method on one fold. Fusions need their members' FitResults."""
  mcfg = config.models[method]
  model_dir = fold_dir(workdir, fold) / method
  prefix = f"fold {fold}: "
  seed = model_seed(config, fold, method)
  if method in FUSION_METHODS:
    names = tuple(mcfg.members)
    missing = [m for m in names if members is None or m not in members]
    if missing:
      raise ValueError(f"{method}: members {missing} not trained")
    data = {}
    for split_name, ids in (("train", split.train_ids), ("val", split.val_ids), ("test", split.test_ids)):
      if not ids:
        data[split_name] = None
        continue
      feats = [members[m].features[split_name] for m in names]
      for m in names:  # the members' feature rows follow the split's id order (fit keeps the Examples order)
        if len(members[m].features[split_name]) != len(ids):
          raise ValueError(f"{method}: {m} has {len(members[m].features[split_name])} {split_name} feature rows, "
                           f"the split {len(ids)}")
      data[split_name] = train.Examples(np.concatenate(feats, axis=1).astype(np.float32),
                                        prepared.corpus.labels(ids), tuple(ids))
    return train.fit(method, mcfg, config.train, data, model_dir, seed=seed, log_prefix=prefix)
  data = {"train": split_examples(prepared, method, split.train_ids),
          "val": split_examples(prepared, method, split.val_ids),
          "test": split_examples(prepared, method, split.test_ids)}
  splits = tuple(k for k in ("train", "val", "test") if data[k] is not None)
  return train.fit(method, mcfg, config.train, data, model_dir, seed=seed, log_prefix=prefix,
                   feature_splits=splits)


# --------------------------------------------------------------------------------------------------------- timing


def _median_ms(fn, items: Sequence[Any], *, warmup: bool = True) -> float:
  """Median wall time of ``fn(item)`` in ms over ``items``; every item is run once before timing (compiles each
  bucket shape) when ``warmup``."""
  if warmup:
    for it in items:
      fn(it)
  times = []
  for it in items:
    t0 = time.perf_counter()
    fn(it)
    times.append((time.perf_counter() - t0) * 1e3)
  return float(statistics.median(times)) if times else math.nan


def time_methods(config: Any, prepared: Prepared, results: Mapping[str, train.FitResult],
                 test_ids: Sequence[str], methods: Sequence[str] = METHODS) -> dict[str, float]:
  """Milliseconds per video for each method (whole-video inference, batch 1, median over the test videos).

  Inputs are what the readers deliver: the decoded 48x48 frames (uint8) for RealSmileNet and the AU + SI series at
  the full frame rate for AUDA. AUDA methods include the feature extraction (``auda.extract_batch`` on one video,
  which computes the frame-wise, AU-wise and cross-AU features together); a fusion runs its members (AUDA
  extraction once) plus its head. Each function ends on a host copy of the probability, so the time is complete.
  """
  from smilejax import auda
  from smilejax import data as data_lib
  tcfg = config.timing
  if not bool(tcfg.enabled):
    return {m: math.nan for m in methods}
  ids = list(test_ids)
  if int(tcfg.max_videos) > 0:
    ids = ids[:int(tcfg.max_videos)]
  corpus = prepared.corpus
  options = _auda_options(config)
  bucket = int(config.train.bucket)
  auda_bucket = int(tcfg.get("auda_bucket", 0) or config.auda_batch.bucket)

  def extract(vid):
    v = corpus.videos[vid]
    out = auda.extract_batch(v.au_TxA[None].astype(np.float32), v.si_T[None], np.array([v.n_frames]), fps=v.fps,
                             options=options, bucket=auda_bucket, chunk_size=None)
    return out

  def run_base(method, vid, feats=None):
    r = results[method]
    if method == "realsmilenet":
      x, lengths = data_lib.pad_to_bucket([prepared.frames[vid]], bucket=bucket)
    elif method == "framewise":
      fr = np.asarray(feats.frame_BxTxD[0])[prepared.frame_indices[vid]]
      x, lengths = data_lib.pad_to_bucket([fr], bucket=bucket)
    else:
      x = np.asarray(feats.au_wise_BxD if method == "auwise" else feats.cross_au_BxD)
      lengths = np.ones(1, np.int32)
    return r.predict(x, lengths)  # host arrays (prob, feats)

  def base_fn(method):
    if method == "realsmilenet":
      return lambda vid: run_base(method, vid)[0]
    return lambda vid: run_base(method, vid, extract(vid))[0]

  def fusion_fn(method):
    members = tuple(config.models[method].members)
    head = results[method]

    def fn(vid):
      feats = extract(vid) if any(m in AUDA_METHODS for m in members) else None
      parts = [run_base(m, vid, feats)[1] for m in members]
      return head.predict(np.concatenate(parts, axis=1), np.ones(1, np.int32))[0]
    return fn

  out = {}
  for method in methods:
    fn = base_fn(method) if method in BASE_METHODS else fusion_fn(method)
    out[method] = _median_ms(fn, ids, warmup=bool(tcfg.warmup))
  return out


def backend_name() -> str:
  """"cpu: <model name>" or "gpu: <device kind>" (fold_result.json ``backend``)."""
  dev = jax.devices()[0]
  if dev.platform == "cpu":
    name = platform.processor() or platform.machine()
    try:
      for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.lower().startswith("model name"):
          name = line.split(":", 1)[1].strip()
          break
    except OSError:
      pass
    return f"cpu: {name} ({os.cpu_count()} cores)"
  return f"{dev.platform}: {dev.device_kind}"


# ----------------------------------------------------------------------------------------------------------- folds


def check_inputs(config: Any, folds: Sequence[int]) -> None:
  """Fail fast, before any loading or training: the config, the corpus folder and the requested fold numbers.

  Raises InputError (one line) naming the folder or fold list. The synthetic corpus is generated here if absent.
  """
  validate_config(config)
  root, _ = corpus_root(config)
  from smilejax.io import nemo  # lazy, as in prepare()
  fold_folder = root / C.FOLDS_DIR
  fold_lists = nemo.read_fold_lists(fold_folder if fold_folder.is_dir() else None)
  unknown = sorted(set(int(k) for k in folds) - set(fold_lists))
  if unknown:
    where = fold_folder if fold_folder.is_dir() else "the official UvA-NEMO lists (smilejax/data/folds)"
    raise InputError(f"{where}: no fold {','.join(map(str, unknown))} (folds {min(fold_lists)}-{max(fold_lists)})")


def run_fold(config: Any, workdir: str | os.PathLike, fold: int) -> dict:
  """Train and evaluate every method on fold ``fold``; write predictions.csv and fold_result.json (last)."""
  t0 = time.time()
  fold = int(fold)
  check_inputs(config, [fold])  # also refuses a fold the corpus's fold lists do not have
  methods = run_methods(config)
  prepared = prepare(config)
  fdir = fold_dir(workdir, fold)
  fdir.mkdir(parents=True, exist_ok=True)
  (fdir / "fold_result.json").unlink(missing_ok=True)  # recomputing: the fold is not done until written again
  split = fold_split(prepared, config, fold)
  logging.info("fold %d: %d train, %d val, %d test videos", fold, len(split.train_ids), len(split.val_ids),
               len(split.test_ids))
  results: dict[str, train.FitResult] = {}
  for i, method in enumerate(methods):
    logging.info("fold %d: method %d/%d %s", fold, i + 1, len(methods), METHOD_NAMES[method])
    t_fit = time.time()
    results[method] = fit_method(config, prepared, fold, method, split, workdir, members=results)
    logging.info("fold %d: %s finished in %.1f s", fold, method, time.time() - t_fit)
  t_timing = time.time()
  ms = time_methods(config, prepared, results, split.test_ids, methods)
  logging.info("fold %d: per-video timing took %.1f s: %s", fold, time.time() - t_timing,
               ", ".join(f"{m} {v:.1f} ms" for m, v in ms.items()))

  test_ids = list(split.test_ids)
  for m in methods:
    if tuple(results[m].test_ids) != tuple(test_ids):
      raise RuntimeError(f"{m}: test ids out of order")
  _write_predictions(fdir / "predictions.csv", prepared, fold, test_ids, results)
  n_no_smile = int(sum(prepared.no_smile[v] for v in test_ids))
  result = {
      "fold": fold,
      "accuracy": {m: float(results[m].test_acc) for m in methods},
      "ms_per_video": {m: (None if math.isnan(ms[m]) else round(float(ms[m]), 3)) for m in methods},
      "n_test": len(split.test_ids), "n_train": len(split.train_ids), "n_val": len(split.val_ids),
      "no_smile_detected": n_no_smile,
      "selected_epoch": {m: int(results[m].selected_epoch) for m in methods},
      "backend": backend_name(), "dataset": prepared.dataset, "seed": int(config.seed),
      "wall_s": round(time.time() - t0, 1),
  }
  train.write_json(fdir / "fold_result.json", result)
  (fdir / "FAILED").unlink(missing_ok=True)
  logging.info("fold %d done in %.0f s: %s", fold, result["wall_s"],
               ", ".join(f"{m} {100 * a:.1f}%" for m, a in result["accuracy"].items()))
  return result


def _write_predictions(path: Path, prepared: Prepared, fold: int, test_ids: Sequence[str],
                       results: Mapping[str, train.FitResult]) -> None:
  methods = tuple(m for m in METHODS if m in results)
  lines = [",".join(["id", "subject", "label", "fold", *methods])]
  for i, vid in enumerate(test_ids):
    v = prepared.corpus.videos[vid]
    lines.append(",".join([vid, v.subject, str(int(v.label)), str(fold),
                           *(f"{float(results[m].test_prob[i]):.6f}" for m in methods)]))
  train._atomic_write(path, lambda f: f.write("\n".join(lines) + "\n"))


def validate_config(config: Any) -> None:
  """Errors a run would meet late, reported before anything is written (one line each)."""
  if not str(config.data.root).strip() and bool(config.data.get("require_root", False)):
    raise InputError(f"config {config.get('name', '')!r} needs the corpus folder: --config.data.root=<folder>")
  if str(config.train.selection) not in train.SELECTIONS:
    raise InputError(f"config train.selection must be one of {train.SELECTIONS}, got {config.train.selection!r}")
  for m in METHODS:
    if m not in config.models:
      raise InputError(f"config has no models.{m}")
  run_methods(config)
  _auda_options(config)  # unknown or bad AUDA options raise here


def config_for_compare(config_json: Mapping[str, Any]) -> dict:
  out = {k: v for k, v in config_json.items() if k not in RESUME_IGNORED_KEYS}
  if isinstance(out.get("train"), Mapping):
    out["train"] = {k: v for k, v in out["train"].items() if k not in train.RESULT_NEUTRAL_TRAIN_KEYS}
  return out


def _config_json(config: Any) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True)) if hasattr(config, "to_json_best_effort") \
      else train._jsonable(config)


def check_workdir(config: Any, workdir: str | os.PathLike, *, overwrite: bool = False,
                  folds: Sequence[int] = ()) -> None:
  """Write ``workdir/config.json``; refuse a workdir made with a config that differs in a way that matters
  (anything but ``RESUME_IGNORED_KEYS``) unless ``overwrite`` (which then deletes the old folds and reports).
  The stored ``folds`` become the union of the old and the requested folds (what the report expects)."""
  validate_config(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  new = _config_json(config)
  path = workdir / "config.json"
  old = None
  has_results = any(p.is_dir() and p.name.startswith("fold_") and any(p.iterdir()) for p in workdir.iterdir())
  if path.exists() and has_results:
    try:
      old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      if not overwrite:
        raise InputError(f"{path}: unreadable ({e}); use --overwrite to start afresh") from e
  if old is not None and config_for_compare(old) != config_for_compare(new):
    a, b = config_for_compare(old), config_for_compare(new)
    diff = _diff_keys(a, b)
    if not overwrite:
      raise InputError(f"{workdir}: was run with another configuration (differs in {', '.join(diff[:6])}); use "
                       f"--overwrite to discard its results, or another --workdir")
    logging.warning("%s: --overwrite: discarding results of another configuration (differs in %s)", workdir,
                    ", ".join(diff[:6]))
    for p in workdir.iterdir():
      if p.is_dir() and p.name.startswith("fold_"):
        shutil.rmtree(p)
    old = None
  if folds:
    prev = [int(k) for k in (old or {}).get("folds", []) or []] if old is not None else []
    new["folds"] = sorted(set(prev) | {int(k) for k in folds})
  train.write_json(path, new)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
  if isinstance(a, Mapping) and isinstance(b, Mapping):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
    return out
  return [] if a == b else [prefix.rstrip(".")]


@dataclasses.dataclass
class RunSummary:
  done: list[int]
  skipped: list[int]
  failed: dict[int, str]
  table: str | None

  @property
  def ok(self) -> bool:
    return not self.failed


def run_all_folds(config: Any, workdir: str | os.PathLike, folds: Sequence[int] | None = None, *,
                  overwrite: bool = False) -> RunSummary:
  """Run every fold of ``folds`` (default ``config.folds``), skipping finished ones; report at the end."""
  workdir = Path(workdir)
  folds = [int(k) for k in (folds if folds else config.folds)]
  check_inputs(config, folds)  # bad input stops the run here, not once per fold
  check_workdir(config, workdir, overwrite=overwrite, folds=folds)
  done, skipped, failed = [], [], {}
  t0 = time.time()
  for i, fold in enumerate(folds):
    fdir = fold_dir(workdir, fold)
    if (fdir / "fold_result.json").is_file():
      logging.info("fold %d: already finished (%s), skipped", fold, fdir / "fold_result.json")
      skipped.append(fold)
      continue
    try:
      run_fold(config, workdir, fold)
      done.append(fold)
    except Exception as e:  # noqa: BLE001 -- a failing fold must not stop the others
      reason = f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]
      fdir.mkdir(parents=True, exist_ok=True)
      train._atomic_write(fdir / "FAILED", lambda f: f.write(reason + "\n"))
      logging.error("fold %d FAILED: %s\n%s", fold, reason, traceback.format_exc())
      failed[fold] = reason
    n_left = sum(1 for k in folds[i + 1:] if not (fold_dir(workdir, k) / "fold_result.json").is_file())
    if done:
      eta = (time.time() - t0) / len(done) * n_left
      logging.info("run_all_folds: %d/%d folds processed, ETA %.0f s", i + 1, len(folds), eta)
  table = None
  try:
    from smilejax import report
  except ImportError as e:
    logging.warning("smilejax.report unavailable (%s): no report written", e)
  else:
    table = report.write_report(workdir)
  return RunSummary(done=done, skipped=skipped, failed=failed, table=table)


# --------------------------------------------------------------------------------------------- feature extraction

# Frame-wise feature blocks (auda.md §7) -> the replication package's dynamics variant names (auda.md §12).
_DYNAMICS_BLOCKS = ("delta_9", "delta_27", "delta_adjusted_9", "delta_adjusted_27", "2nd_delta_9", "2nd_delta_27",
                    "2nd_delta_adjusted_9", "2nd_delta_adjusted_27")


def extract_features(config: Any, out: str | os.PathLike, *, root: str | None = None,
                     openface_csv: str | None = None, si_file: str | None = None, si_proxy: str | None = None,
                     package_dir: str | None = None, overwrite: bool = False) -> Path:
  """AUDA features of a dataset or of one video, written to ``out`` (.npz) and optionally as an AUDA replication
  package (``package_dir``, layout of auda.md §12 via ``smilejax.io.auda_package``).

  Source: ``openface_csv`` (+ ``si_file``, or the flagged ``si_proxy`` such as "AU12") for one video; otherwise the
  corpus folder ``root`` (default ``config.data.root``; empty = the synthetic corpus of the config).
  The .npz holds ids, labels, subjects, folds (0 = none), fps, offsets (rows of video i: offsets[i]:offsets[i+1]),
  frame [sum T, 154] at the full frame rate, phases [sum T], au_wise [N, 476], cross_au [N, 4352], no_smile [N].
  A finished output (the .npz exists) is refused unless ``overwrite``; it is written atomically, last.
  """
  out = Path(out)
  if out.suffix != ".npz":
    out = out.with_suffix(".npz")
  if out.exists() and not overwrite:
    raise InputError(f"{out}: exists (a finished extraction); use --overwrite to replace it")
  options = _auda_options(config)
  if openface_csv:
    from smilejax.io import intensity as intensity_io
    from smilejax.io import openface as openface_io
    of = openface_io.read_openface_csv(openface_csv)
    vid = Path(openface_csv).stem
    if si_file:
      si = intensity_io.read_smile_intensity(si_file)
      if len(si) != of.au_TxA.shape[0]:
        raise InputError(f"{si_file}: {len(si)} smile-intensity values but {openface_csv} has "
                         f"{of.au_TxA.shape[0]} frames")
    elif si_proxy:
      from smilejax.constants import AU_NAMES
      name = si_proxy.upper().removesuffix("_R")
      if name not in AU_NAMES:
        raise InputError(f"--si_proxy must name one of {', '.join(AU_NAMES)}, got {si_proxy!r}")
      si = of.au_TxA[:, AU_NAMES.index(name)].copy()
      logging.warning("%s: smile intensity replaced by the proxy %s (flagged)", vid, name)
    else:
      raise InputError(f"{openface_csv}: no smile-intensity file (--si_file; or the flagged --si_proxy=AU12)")
    au = {vid: of.au_TxA}
    sis = {vid: np.asarray(si, np.float64)}
    fps = {vid: float(of.fps)}
    labels, subjects, folds = {vid: -1}, {vid: ""}, {vid: 0}
    try:
      from smilejax.io import nemo
      subjects[vid], labels[vid] = nemo.parse_video_id(vid)
    except InputError:
      pass
  else:
    from smilejax import data as data_lib
    if root:
      config = config.copy_and_resolve_references()
      with config.unlocked():
        config.data.root = str(root)
    corpus_dir, _ = corpus_root(config)
    corpus = data_lib.load_corpus(corpus_dir, with_frames=False,
                                  cache_dir=str(config.data.cache_dir) or None)
    au = {v: corpus.videos[v].au_TxA for v in corpus.videos}
    sis = {v: corpus.videos[v].si_T for v in corpus.videos}
    fps = {v: corpus.videos[v].fps for v in corpus.videos}
    labels = {v: int(corpus.videos[v].label) for v in corpus.videos}
    subjects = {v: corpus.videos[v].subject for v in corpus.videos}
    folds = {v: corpus.fold_of(v) for v in corpus.videos}
  ids = sorted(au)
  feats = _auda_batched(ids, au, sis, fps, config, options, progress="extract_features")
  frame, phases, au_wise, cross_au, no_smile = (feats[k] for k in ("frame", "phases", "au_wise", "cross_au",
                                                                    "no_smile"))
  offsets = np.cumsum([0] + [len(frame[v]) for v in ids])
  if package_dir:
    _write_package(Path(package_dir), ids, au, sis, frame, au_wise, cross_au, options)
  train._atomic_write(out, lambda fh: np.savez(
      fh, ids=np.array(ids), labels=np.array([labels[v] for v in ids], np.int32),
      subjects=np.array([subjects[v] for v in ids]), folds=np.array([folds[v] for v in ids], np.int32),
      fps=np.array([fps[v] for v in ids]), offsets=offsets, frame=np.concatenate([frame[v] for v in ids]),
      phases=np.concatenate([phases[v] for v in ids]), au_wise=np.stack([au_wise[v] for v in ids]),
      cross_au=np.stack([cross_au[v] for v in ids]), no_smile=np.array([no_smile[v] for v in ids]),
      options=np.array(json.dumps(dataclasses.asdict(options), default=str))), binary=True)
  logging.info("extract_features: %d videos -> %s (%d without a detected smile)", len(ids), out,
               sum(no_smile.values()))
  return out


def _write_package(root: Path, ids, au, sis, frame, au_wise, cross_au, options) -> None:
  from smilejax.constants import NUM_AUS
  from smilejax.io import auda_package
  if tuple(options.windows) != (9, 27):
    raise InputError(f"{root}: the AUDA package layout names windows 9 and 27; options have {options.windows}")
  n_seg = len(options.segments)
  videos = {}
  for vid in ids:
    if auda_package.package_video_id(vid) != vid:
      raise InputError(f"{vid}: not a package video id (four '_'-separated tokens, e.g. 001_deliberate_smile_2)")
    dyn = {name: frame[vid][:, NUM_AUS * (1 + b): NUM_AUS * (2 + b)] for b, name in enumerate(_DYNAMICS_BLOCKS)}
    aw = au_wise[vid].reshape(n_seg, -1)
    ca = cross_au[vid].reshape(n_seg, -1)
    videos[vid] = auda_package.AudaPackageVideo(
        id=vid, au_TxA=au[vid], si_T=sis[vid], dynamics=dyn,
        au_wise={s: aw[i] for i, s in enumerate(options.segments)},
        cross_au={s: ca[i] for i, s in enumerate(options.segments)})
  auda_package.write_auda_package(root, videos)
  logging.info("AUDA package layout written to %s (%d videos)", root, len(ids))
