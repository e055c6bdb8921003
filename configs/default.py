"""The paper's experiment on the synthetic corpus, sized for a 2-core CPU (about 10 minutes from nothing).

    bin/run_all_folds --config=configs/default.py            # workdir: ./workdirs/default
    bin/run_fold --config=configs/default.py --fold=3

Everything is the paper's protocol and settings (configs/__init__.py: 10 subject-independent folds, inner validation
split, Adam 1e-3, batch 16, L2 0.001, late fusion of frozen models) except two numbers, chosen for the budget:

- ``data.synthetic_subjects = 60`` (~203 videos) instead of the "default" size's 110 (~367 videos), as synthetic.md
  §5 prescribes when over budget ("lower n_subjects, not clip length");
- ``models.realsmilenet.epochs = 1`` instead of [O]'s 10.

Measured 2026-11-28 on the 2-core development CPU (AMD EPYC, otherwise idle), cold: a fresh clone, an empty HOME
(no pip cache, no corpus, no XLA cache), `/usr/bin/time -v make run`: 10 min 36 s in all -- 68 s creating the venv
and installing, then 9 min 28 s for bin/run_all_folds (peak RSS 2.7 GB): corpus generation 36 s, decoding 28 s, AUDA
features 12 s, fold 1 221 s (RealSmileNet 121 s, most of it compilation; frame-wise 30 s; per-video timing 18 s),
folds 2-10 31-40 s each.

RealSmileNet does not learn this corpus's pixel cues within [O]'s 10 epochs either: on fold 1 of this 60-subject
corpus with 12 epochs its training loss stayed at 0.71-0.77 and validation accuracy at 0.36-0.50 (test 47 %), while
the same settings learn a separable pixel problem in 18 steps (tests/test_train.py, benchmark-marked). So the epoch
count changes the runtime (about 20 s per epoch and fold on 2 idle cores), not the table. The paper's settings:

    bin/run_all_folds --config=configs/default.py --config.data.synthetic_subjects=0 \\
        --config.models.realsmilenet.epochs=10 --workdir=./workdirs/default-paper     # hours on 2 cores

A rerun reuses the corpus, its decoded-frame and AUDA caches and the XLA compilation cache (--compile_cache).
Same seed -> identical accuracies (per-video times vary from run to run).
"""

import pathlib
import runpy

# The shared settings live in configs/__init__.py; config_flags loads this file by path, so load that one by path too.
_PAPER = pathlib.Path(__file__).resolve().with_name("__init__.py")


def get_config():
  c = runpy.run_path(str(_PAPER))["paper_config"]()
  c.name = "default"
  c.data.synthetic_size = "default"
  c.data.synthetic_subjects = 60
  c.models.realsmilenet.epochs = 1
  return c
