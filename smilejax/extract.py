"""AUDA features of a corpus or of one video, written as one ``.npz`` (and optionally in the AUDA replication
package layout, auda.md §12) -- what ``bin/extract_features`` runs.

The .npz holds ids, labels, subjects, folds (0 = none), fps, offsets (rows of video i: offsets[i]:offsets[i+1]),
frame [sum T, 154] at the full frame rate, phases [sum T], au_wise [N, 476], cross_au [N, 4352], no_smile [N] and
the AUDA options as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from smilejax import data, fileio
from smilejax.constants import AU_NAMES, NUM_AUS
from smilejax.errors import InputError
from smilejax.io import auda_package, intensity, nemo, openface
from smilejax.prepare import auda_options, corpus_root, extract_corpus_features


def _one_video(openface_csv: str, si_file: str | None, si_proxy: str | None, data_cfg: Any) -> dict[str, dict]:
  """Inputs of one video from its OpenFace CSV and smile-intensity file (or the flagged proxy AU); the CSV is read
  with the config's data rules (frame rate, failed frames)."""
  of = openface.read_openface_csv(openface_csv, **data.openface_options(data_cfg))
  vid = Path(openface_csv).stem
  if si_file:
    si = intensity.read_smile_intensity(si_file)
    if len(si) != of.au_TxA.shape[0]:
      raise InputError(
        f"{si_file}: {len(si)} smile-intensity values but {openface_csv} has {of.au_TxA.shape[0]} frames"
      )
  elif si_proxy:
    column = intensity.si_proxy_column(si_proxy)
    si = of.au_TxA[:, column].copy()
    logging.warning("%s: smile intensity replaced by the proxy %s (flagged)", vid, AU_NAMES[column])
  else:
    raise InputError(f"{openface_csv}: no smile-intensity file (--si_file; or the flagged --si_proxy=AU12)")
  try:
    subject, label = nemo.parse_video_id(vid)
  except InputError:
    subject, label = "", -1
  return {
    "au": {vid: of.au_TxA},
    "si": {vid: np.asarray(si, np.float64)},
    "fps": {vid: float(of.fps)},
    "label": {vid: label},
    "subject": {vid: subject},
    "fold": {vid: 0},
  }


def _corpus(config: Any) -> dict[str, dict]:
  """Inputs of every video of the config's corpus (no frames)."""
  root, _ = corpus_root(config)
  corpus = data.load_corpus(
    root, with_frames=False, cache_dir=str(config.data.cache_dir) or None, **data.loading_options(config.data)
  )
  v = corpus.videos
  return {
    "au": {i: v[i].au_TxA for i in v},
    "si": {i: v[i].si_T for i in v},
    "fps": {i: v[i].fps for i in v},
    "label": {i: int(v[i].label) for i in v},
    "subject": {i: v[i].subject for i in v},
    "fold": {i: corpus.fold_of(i) for i in v},
  }


def extract_features(
  config: Any,
  out: str | os.PathLike,
  *,
  root: str | None = None,
  openface_csv: str | None = None,
  si_file: str | None = None,
  si_proxy: str | None = None,
  package_dir: str | None = None,
  overwrite: bool = False,
  fps: float | None = None,
) -> Path:
  """Write the AUDA features of one video (``openface_csv`` + ``si_file`` or ``si_proxy``) or of the corpus
  ``root`` (default ``config.data.root``; empty = the config's synthetic corpus) to ``out`` (module docstring).

  ``fps`` (> 0): the frame rate of the OpenFace CSV(s), overriding their timestamps (``config.data.fps``).
  A finished output (the .npz exists) is refused unless ``overwrite``; it is written atomically, last.
  """
  out = Path(out)
  if out.suffix != ".npz":
    out = out.with_suffix(".npz")
  if out.exists() and not overwrite:
    raise InputError(f"{out}: exists (a finished extraction); use --overwrite to replace it")
  options = auda_options(config)
  if root or fps:
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.data.root = str(root) if root else config.data.root
      config.data.fps = float(fps) if fps else config.data.get("fps", 0.0)
  if openface_csv:
    src = _one_video(openface_csv, si_file, si_proxy, config.data)
  else:
    src = _corpus(config)
  ids = sorted(src["au"])
  feats = extract_corpus_features(ids, src["au"], src["si"], src["fps"], config, progress="extract_features")
  frame = feats["frame"]
  if package_dir:
    _write_package(Path(package_dir), ids, src["au"], src["si"], feats, options)
  arrays = dict(
    ids=np.array(ids),
    labels=np.array([src["label"][v] for v in ids], np.int32),
    subjects=np.array([src["subject"][v] for v in ids]),
    folds=np.array([src["fold"][v] for v in ids], np.int32),
    fps=np.array([src["fps"][v] for v in ids]),
    offsets=np.cumsum([0] + [len(frame[v]) for v in ids]),
    frame=np.concatenate([frame[v] for v in ids]),
    phases=np.concatenate([feats["phases"][v] for v in ids]),
    au_wise=np.stack([feats["au_wise"][v] for v in ids]),
    cross_au=np.stack([feats["cross_au"][v] for v in ids]),
    no_smile=np.array([feats["no_smile"][v] for v in ids]),
    options=np.array(json.dumps(dataclasses.asdict(options), default=str)),
  )
  fileio.atomic_write(out, lambda fh: np.savez(fh, **arrays), binary=True)
  logging.info(
    "extract_features: %d videos -> %s (%d without a detected smile)", len(ids), out, sum(feats["no_smile"].values())
  )
  return out


def _write_package(root: Path, ids, au, sis, feats, options) -> None:
  """The features in the replication package's layout: dynamics variants are the frame-wise blocks after the
  17 AU values (auda.md §7, §12)."""
  if tuple(options.windows) != (9, 27):
    raise InputError(f"{root}: the AUDA package layout names windows 9 and 27; options have {options.windows}")
  n_seg = len(options.segments)
  videos = {}
  for vid in ids:
    if auda_package.package_video_id(vid) != vid:
      raise InputError(f"{vid}: not a package video id (four '_'-separated tokens, e.g. 001_deliberate_smile_2)")
    frame = feats["frame"][vid]
    dyn = {
      name: frame[:, NUM_AUS * (1 + b) : NUM_AUS * (2 + b)] for b, name in enumerate(auda_package.DYNAMICS_VARIANTS)
    }
    aw = feats["au_wise"][vid].reshape(n_seg, -1)
    ca = feats["cross_au"][vid].reshape(n_seg, -1)
    videos[vid] = auda_package.AudaPackageVideo(
      id=vid,
      au_TxA=au[vid],
      si_T=sis[vid],
      dynamics=dyn,
      au_wise={s: aw[i] for i, s in enumerate(options.segments)},
      cross_au={s: ca[i] for i, s in enumerate(options.segments)},
    )
  auda_package.write_auda_package(root, videos)
  logging.info("AUDA package layout written to %s (%d videos)", root, len(ids))
