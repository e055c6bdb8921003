"""Tiny configuration for tests and smoke runs: the synthetic tiny corpus (12 subjects, about 40 videos, clips of at
most 4 s) and a few epochs.

    bin/run_all_folds --config=configs/test.py --folds=1,2       # workdir ./workdirs/test
"""

import pathlib
import runpy

# The shared settings live in configs/__init__.py; config_flags loads this file by path, so load that one by path too.
_PAPER = pathlib.Path(__file__).resolve().with_name("__init__.py")


def get_config():
  c = runpy.run_path(str(_PAPER))["paper_config"]()
  c.name = "test"
  c.data.synthetic_size = "tiny"
  c.train.val_fraction = 0.2
  # One padded length for every tiny clip (<= 4 s: <= 41 sampled frames, <= 200 AU frames), so each step compiles
  # once; the paper configs use finer buckets (less padding on long corpora).
  c.train.bucket = 48
  c.auda_batch.bucket = 256
  c.timing.auda_bucket = 256
  for name in c.methods:
    c.models[name].epochs = 2
  c.timing.max_videos = 3
  return c
