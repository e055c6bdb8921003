"""Simulated videos and the synthetic corpus on disk (synthetic.md §5).

`simulate_video` runs one video through the pipeline in memory; `generate_corpus` writes a whole corpus in the real
datasets' layout (videos/, openface/, smile_intensities/, folds/) through the project's own io writers, plus
latent.csv and generator.json, on a process pool; `ensure_corpus` does it once, into a temporary folder renamed into
place, so an interrupted run never looks finished.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from smilejax import constants as C
from smilejax import fileio
from smilejax.errors import InputError
from smilejax.io.intensity import write_smile_intensity
from smilejax.io.nemo import write_fold_lists
from smilejax.io.openface import write_openface_csv
from smilejax.io.video import write_video
from smilejax.synthetic.latents import (
  KIND_FOLDS,
  STREAM_RENDER,
  Subject,
  SyntheticConfig,
  VideoLatents,
  draw_subject,
  get_config,
  sample_video_latents,
  stream_rng,
  video_rng,
)
from smilejax.synthetic.observation import Observation, observe_openface, smile_intensity
from smilejax.synthetic.render import RenderNuisance, draw_render_nuisance, render_frames
from smilejax.synthetic.series import LatentSeries, latent_au_series

# 1.1.0: quiet-AU cutoffs and static baselines (observation.QUIET_DYNAMIC_AUS, latents.STATIC_BASELINE_MEAN).
# 2.0.0: render version 2 (detector-like framing, real-face magnitudes) and stronger pixel-mostly cues (wr, head).
GENERATOR_VERSION = "2.0.0"
GENERATOR_JSON = "generator.json"
LATENT_CSV = "latent.csv"
# Columns of latent.csv, in order (then n_frames, n_failed, blink_rate, jaw_drop, asymmetry).
LATENT_COLUMNS = (
  "id",
  "subject",
  "label",
  "age",
  "d_on",
  "d_ap",
  "d_off",
  "amplitude",
  "irr",
  "duchenne",
  "g6",
  "lag6",
  "open_mouth",
  "wr",
  "head",
  "pre_roll",
  "post_roll",
)


# ----------------------------------------------------------------------------------------------------------------
# One video, in memory
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SimulatedVideo:
  """One synthetic video in memory: latents, latent series, the OpenFace-like observation, SI and (optionally)
  the rendered frames uint8 [T, 64, 64, 3]."""

  latents: VideoLatents
  series: LatentSeries
  observation: Observation
  si_T: np.ndarray
  fps: float
  frames_TxHxWxC: np.ndarray | None = None
  nuisance: RenderNuisance | None = None  # always drawn (latent.csv records its asymmetry)

  @property
  def id(self) -> str:
    return self.latents.id

  @property
  def label(self) -> int:
    return self.latents.label

  @property
  def subject(self) -> int:
    return self.latents.subject

  @property
  def au_TxA(self) -> np.ndarray:
    return self.observation.au_TxA

  @property
  def timestamps_T(self) -> np.ndarray:
    return np.round(np.arange(len(self.si_T)) / self.fps, 3)


def simulate_video(
  seed: int,
  subject: Subject,
  label: int,
  k: int,
  *,
  config: SyntheticConfig,
  render: bool = True,
  wr: float | None = None,
) -> SimulatedVideo:
  """Latents -> AU series -> observation -> SI (-> frames when `render`). `wr` overrides the crow's-feet
  latent in the rendering only (for the wrinkle-cue check of spec §6.5)."""
  lat = sample_video_latents(seed, subject, label, k, config=config)
  series = latent_au_series(seed, lat, fps=config.fps)
  obs = observe_openface(seed, lat, subject, series, config=config)
  si = smile_intensity(seed, lat, series, obs.success_T)
  # The render nuisances are drawn even without rendering (cheap), so latent.csv is the same either way.
  rng = video_rng(seed, lat.subject, label, k, STREAM_RENDER)
  nuisance = draw_render_nuisance(rng, len(si), config.fps)
  frames = None
  if render:
    frames = render_frames(
      subject.appearance,
      series.X_TxA,
      series.a_T,
      series.a_lag_T,
      wr=lat.wr if wr is None else wr,
      head=lat.head,
      nuisance=nuisance,
      rng=rng,
      size=config.image_size,
    )
  return SimulatedVideo(
    latents=lat,
    series=series,
    observation=obs,
    si_T=si,
    fps=float(config.fps),
    frames_TxHxWxC=frames,
    nuisance=nuisance,
  )


def simulate_series(
  n_subjects: int | None = None, *, size: str = "default", seed: int = 0, first_subject: int = 1, **overrides: Any
) -> list[SimulatedVideo]:
  """AU/SI series of a whole corpus draw in memory, without rendering or writing files (the same values the
  corpus files would hold for these subjects)."""
  config = get_config(size, **overrides)
  n = config.n_subjects if n_subjects is None else n_subjects
  out = []
  for s in range(first_subject, first_subject + n):
    subj = draw_subject(seed, s)
    out.extend(simulate_video(seed, subj, label, k, config=config, render=False) for label, k in subj.video_keys())
  return out


# ----------------------------------------------------------------------------------------------------------------
# Corpus on disk (spec §5)
# ----------------------------------------------------------------------------------------------------------------
def config_hash(config: SyntheticConfig, seed: int) -> str:
  """sha256 over the generator version, seed and every config field (the identity of a corpus)."""
  payload = json.dumps(
    {"version": GENERATOR_VERSION, "seed": int(seed), "config": dataclasses.asdict(config)}, sort_keys=True
  )
  return hashlib.sha256(payload.encode()).hexdigest()[:16]


def assign_folds(
  videos_by_subject: dict[int, list[str]], *, seed: int, n_folds: int = C.NUM_FOLDS
) -> dict[int, list[str]]:
  """Spec §5: shuffle subjects with the seed, give each to the fold with the fewest videos (lowest fold on
  ties). Returns fold k (1-based) -> sorted ids of both classes."""
  rng = stream_rng(seed, 0, KIND_FOLDS, 0, 0)
  subjects = sorted(videos_by_subject)
  order = rng.permutation(len(subjects))
  folds: dict[int, list[str]] = {k: [] for k in range(1, n_folds + 1)}
  for i in order:
    ids = videos_by_subject[subjects[i]]
    k = min(folds, key=lambda f: (len(folds[f]), f))
    folds[k].extend(ids)
  return {k: sorted(v) for k, v in folds.items()}


def _fmt(x: Any) -> str:
  if isinstance(x, (bool, np.bool_)):
    return str(int(x))
  if isinstance(x, (float, np.floating)):
    return f"{float(x):.6f}"
  return str(x)


def _latent_row(sim: SimulatedVideo) -> dict[str, Any]:
  lat = sim.latents
  row = {c: getattr(lat, c) for c in LATENT_COLUMNS}
  row.update(
    n_frames=len(sim.si_T),
    n_failed=int((~sim.observation.success_T).sum()),
    blink_rate=sim.series.blink_rate_per_min,
    jaw_drop=sim.series.jaw_drop,
    asymmetry=sim.nuisance.alpha,
  )
  return row


def _write_latent_csv(path: Path, rows: list[dict[str, Any]]) -> None:
  cols = list(rows[0])
  lines = [",".join(cols)] + [",".join(_fmt(r[c]) for c in cols) for r in sorted(rows, key=lambda r: r["id"])]
  fileio.write_text(path, "\n".join(lines) + "\n")


def read_latent_csv(path: str | os.PathLike) -> dict[str, dict[str, float | str]]:
  """latent.csv -> id -> {column: value} (debugging and the Bayes check only; no model reads it)."""
  lines = Path(path).read_text().splitlines()
  cols = lines[0].split(",")
  out = {}
  for line in lines[1:]:
    vals = line.split(",")
    row = {c: (v if c == "id" else float(v)) for c, v in zip(cols, vals)}
    out[row["id"]] = row
  return out


def write_video_files(root: Path, sim: SimulatedVideo, config: SyntheticConfig) -> None:
  """The per-video files of the corpus layout (constants.*_DIR), through the project's io writers."""
  obs = sim.observation
  write_openface_csv(
    root / C.OPENFACE_DIR / f"{sim.id}.csv",
    obs.au_TxA,
    timestamps_T=sim.timestamps_T,
    success_T=obs.success_T,
    confidence_T=obs.confidence_T,
    presence_TxC=obs.presence_TxC,
    face_id=True,
    decimals=2,
  )
  write_smile_intensity(root / C.SMILE_INTENSITY_DIR / f"{sim.id}{C.SMILE_INTENSITY_SUFFIX}", sim.si_T)
  if config.write_videos and sim.frames_TxHxWxC is not None:
    write_video(root / C.VIDEO_DIR / f"{sim.id}.mp4", sim.frames_TxHxWxC, fps=config.fps, crf=config.crf)


def _generate_one(task: tuple[str, int, dict, int, int, int]) -> dict[str, Any]:
  """Worker: simulate one video and write its files; returns its latent.csv row."""
  root, seed, config_dict, subject, label, k = task
  config = SyntheticConfig(**config_dict)
  subj = draw_subject(seed, subject)
  sim = simulate_video(seed, subj, label, k, config=config, render=config.write_videos)
  write_video_files(Path(root), sim, config)
  return _latent_row(sim)


def _expected_files(root: Path, ids: Iterable[str], config: SyntheticConfig) -> list[Path]:
  files = []
  for vid in ids:
    files.append(root / C.OPENFACE_DIR / f"{vid}.csv")
    files.append(root / C.SMILE_INTENSITY_DIR / f"{vid}{C.SMILE_INTENSITY_SUFFIX}")
    if config.write_videos:
      files.append(root / C.VIDEO_DIR / f"{vid}.mp4")
  for k in range(1, C.NUM_FOLDS + 1):
    files += [root / C.FOLDS_DIR / f"P_fold_all_{k}.txt", root / C.FOLDS_DIR / f"S_fold_all_{k}.txt"]
  return files


def generator_info(config: SyntheticConfig, seed: int, size: str | None = None) -> dict[str, Any]:
  """The content of generator.json (no timestamps, so it is byte-identical for the same seed and config)."""
  return {
    "generator": "smilejax.synthetic",
    "version": GENERATOR_VERSION,
    "seed": int(seed),
    "size": size,
    "config": dataclasses.asdict(config),
    "config_hash": config_hash(config, seed),
  }


def is_complete_corpus(root: str | os.PathLike, info: dict[str, Any] | None = None) -> bool:
  """True if root holds a finished synthetic corpus (generator.json, latent.csv and every listed file) and,
  when `info` is given, its generator.json has the same config hash."""
  root = Path(root)
  try:
    have = json.loads((root / GENERATOR_JSON).read_text())
    config = SyntheticConfig(**have["config"])
    ids = read_latent_csv(root / LATENT_CSV).keys()
  except (OSError, ValueError, KeyError, TypeError):
    return False
  if info is not None and have.get("config_hash") != info["config_hash"]:
    return False
  return all(p.is_file() for p in _expected_files(root, ids, config))


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _run_tasks(tasks: list[tuple], *, n_workers: int, report: Callable[[int], None]) -> list[dict[str, Any]]:
  """`_generate_one` over every task, in a process pool when n_workers > 1 (videos are independent, so generation
  scales with cores); returns the latent.csv rows in order of completion. report(i) after each video."""
  rows: list[dict[str, Any]] = []
  if n_workers == 1:
    for i, task in enumerate(tasks, 1):
      rows.append(_generate_one(task))
      report(i)
    return rows
  # spawn, not fork: the parent may hold JAX/XLA threads, which fork does not copy safely.
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
    futures = [pool.submit(_generate_one, t) for t in tasks]
    try:
      for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
        rows.append(fut.result())
        report(i)
    except BaseException:
      for fut in futures:  # fail fast: do not run the remaining videos on the way out
        fut.cancel()
      raise
  return rows


def generate_corpus(
  out_dir: str | os.PathLike,
  *,
  config: SyntheticConfig,
  seed: int = 0,
  size: str | None = None,
  n_workers: int | None = None,
  progress: bool = True,
) -> float:
  """Write a complete corpus into the (new or empty) folder out_dir; returns the wall time in seconds.
  Files: videos/, openface/, smile_intensities/, folds/, latent.csv, generator.json (written last)."""
  out = Path(out_dir)
  t_start = time.perf_counter()
  for d in (C.VIDEO_DIR, C.OPENFACE_DIR, C.SMILE_INTENSITY_DIR, C.FOLDS_DIR):
    (out / d).mkdir(parents=True, exist_ok=True)
  subjects = [draw_subject(seed, s) for s in range(1, config.n_subjects + 1)]
  tasks = [
    (str(out), int(seed), dataclasses.asdict(config), s.subject, label, k)
    for s in subjects
    for label, k in s.video_keys()
  ]
  n = len(tasks)
  if n_workers is None:
    n_workers = min(2, os.cpu_count() or 1)
  n_workers = max(1, min(n_workers, n))
  logging.info(
    "synthetic corpus: %d subjects, %d videos -> %s (%d worker%s)",
    config.n_subjects,
    n,
    out,
    n_workers,
    "s" if n_workers > 1 else "",
  )
  step = max(1, n // 10)

  def report(done: int) -> None:
    if progress and (done % step == 0 or done == n):
      logging.info(
        "synthetic corpus: %d/%d videos (%.0f%%), %.1f s", done, n, 100.0 * done / n, time.perf_counter() - t_start
      )

  rows = _run_tasks(tasks, n_workers=n_workers, report=report)
  by_subject: dict[int, list[str]] = {}
  for r in rows:
    by_subject.setdefault(int(r["subject"]), []).append(r["id"])
  folds = assign_folds(by_subject, seed=seed)
  write_fold_lists(out / C.FOLDS_DIR, folds)
  _write_latent_csv(out / LATENT_CSV, rows)
  fileio.write_json(out / GENERATOR_JSON, generator_info(config, seed, size))
  elapsed = time.perf_counter() - t_start
  n_frames = sum(int(r["n_frames"]) for r in rows)
  logging.info("synthetic corpus: %d videos, %d frames written in %.1f s", n, n_frames, elapsed)
  return elapsed


def ensure_corpus(
  root: str | os.PathLike,
  *,
  size: str = "default",
  seed: int = 0,
  overwrite: bool = False,
  n_workers: int | None = None,
  progress: bool = True,
  **overrides: Any,
) -> Path:
  """Return root, generating the synthetic corpus there first unless root already holds a complete corpus
  with the same generator.json (config hash). Generation goes to a temporary sibling folder that is renamed
  into place at the end, so an interrupted run never looks finished. `overwrite=True` regenerates anyway and
  also replaces a folder that is not a synthetic corpus (otherwise that is an InputError)."""
  root = Path(root).absolute()
  config = get_config(size, **overrides)
  info = generator_info(config, seed, size if isinstance(size, str) else None)
  if not overwrite and is_complete_corpus(root, info):
    logging.info("synthetic corpus: %s is complete (config %s)", root, info["config_hash"])
    return root
  if root.exists() and not root.is_dir():
    raise InputError(f"{root}: exists and is not a folder")
  if root.is_dir() and any(root.iterdir()) and not (root / GENERATOR_JSON).exists() and not overwrite:
    raise InputError(
      f"{root}: folder is not empty and holds no synthetic corpus (overwrite=True / --overwrite replaces it)"
    )
  root.parent.mkdir(parents=True, exist_ok=True)
  prefix = f".{root.name}.partial-"
  for stale in root.parent.glob(prefix + "*"):  # left by killed runs
    pid = stale.name[len(prefix) :].split("-")[0]
    if pid.isdigit() and not _pid_alive(int(pid)):
      shutil.rmtree(stale, ignore_errors=True)
  tmp = root.parent / f"{prefix}{os.getpid()}-{time.time_ns()}"
  tmp.mkdir()
  try:
    generate_corpus(tmp, config=config, seed=seed, size=info["size"], n_workers=n_workers, progress=progress)
    if not overwrite and is_complete_corpus(root, info):  # a concurrent run finished first
      shutil.rmtree(tmp, ignore_errors=True)
      return root
    old = None
    if root.exists():
      old = root.parent / f".{root.name}.old-{os.getpid()}-{time.time_ns()}"
      root.rename(old)
    tmp.rename(root)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return root
