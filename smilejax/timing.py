"""Milliseconds per video, as the paper's Table 1 reports them: whole-video inference, batch 1, the median over a
fold's test videos after one untimed warm-up pass (which compiles every padded length).

Inputs are what the readers deliver: the decoded 48x48 frames (uint8) for RealSmileNet and the AU + SI series at the
full frame rate for AUDA, so an AUDA time includes the feature extraction (``auda.extract_batch`` on one video, which
computes the frame-wise, AU-wise and cross-AU features together); a fusion runs its members (the AUDA extraction
once) plus its head. Each timed function ends on a host copy of the probability, so the time is complete.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from smilejax import auda, methods, train
from smilejax.prepare import Prepared, auda_options
from smilejax.sequences import pad_to_bucket


def median_ms(fn: Callable[[Any], Any], items: Sequence[Any], *, warmup: bool = True) -> float:
  """Median wall time of ``fn(item)`` over ``items`` in ms (NaN for no items); each item runs once untimed first
  when ``warmup``."""
  if warmup:
    for it in items:
      fn(it)
  times = []
  for it in items:
    t0 = time.perf_counter()
    fn(it)
    times.append((time.perf_counter() - t0) * 1e3)
  return float(statistics.median(times)) if times else math.nan


def time_methods(
  config: Any,
  prepared: Prepared,
  results: Mapping[str, train.FitResult],
  test_ids: Sequence[str],
  run: Sequence[str] = methods.METHODS,
) -> dict[str, float]:
  """Milliseconds per video of each method in ``run`` (module docstring); NaN when ``config.timing`` is off."""
  tcfg = config.timing
  if not bool(tcfg.enabled):
    return {m: math.nan for m in run}
  ids = list(test_ids)
  if int(tcfg.max_videos) > 0:
    ids = ids[: int(tcfg.max_videos)]
  videos = prepared.corpus.videos
  options = auda_options(config)
  bucket = int(config.train.bucket)
  auda_bucket = int(tcfg.get("auda_bucket", 0) or config.auda_batch.bucket)

  def extract(vid):
    v = videos[vid]
    return auda.extract_batch(
      v.au_TxA[None].astype(np.float32),
      v.si_T[None],
      np.array([v.n_frames]),
      fps=v.fps,
      options=options,
      bucket=auda_bucket,
      chunk_size=None,
    )

  def run_base(method, vid, feats=None):
    if method == "realsmilenet":
      x, lengths = pad_to_bucket([prepared.frames[vid]], bucket=bucket)
    elif method == "framewise":
      x, lengths = pad_to_bucket([np.asarray(feats.frame_BxTxD[0])[prepared.frame_indices[vid]]], bucket=bucket)
    else:
      x = np.asarray(feats.au_wise_BxD if method == "auwise" else feats.cross_au_BxD)
      lengths = np.ones(1, np.int32)
    return results[method].predict(x, lengths)  # host arrays (prob, feats)

  def timed(method):
    m = methods.BY_ID[method]
    if not m.is_fusion:
      if method == "realsmilenet":
        return lambda vid: run_base(method, vid)[0]
      return lambda vid: run_base(method, vid, extract(vid))[0]
    members = tuple(config.models[method].members)
    head = results[method]

    def fn(vid):
      feats = extract(vid) if any(k in methods.AUDA_METHODS for k in members) else None
      parts = [run_base(k, vid, feats)[1] for k in members]
      return head.predict(np.concatenate(parts, axis=1), np.ones(1, np.int32))[0]

    return fn

  return {m: median_ms(timed(m), ids, warmup=bool(tcfg.warmup)) for m in run}
