"""Experiment configurations (ml_collections). Every number that matters to the paper's experiment lives here.

``paper_config()`` builds the shared settings; ``default.py`` (synthetic corpus), ``uvanemo.py`` (a UvA-NEMO folder)
and ``test.py`` (tiny corpus, few epochs) adjust it. Any field can be overridden on the command line, e.g.
``bin/run_all_folds --config=configs/default.py --config.train.epochs=3 --config.seed=1``.

Layout of a config:

- ``seed``: the run's seed: inner validation split, initialisation, shuffling and dropout of every model.
- ``folds``: the folds ``run_all_folds`` runs (official UvA-NEMO list numbering, realsmilenet.md §6).
- ``data``: corpus folder (``root``; empty = the synthetic corpus ``synthetic_size``/``synthetic_seed`` generated into
  ``synthetic_dir`` or ``~/.cache/smilejax/synthetic-<size>-seed<seed>``), cache folder, frame size and stride
  (0 = round(fps / 10), realsmilenet.md §2), how files are read and judged (frame rate, failed OpenFace frames,
  mp4/CSV tolerances) and what a bad video does (``on_bad_video``: fail, listing every bad video at once, or skip).
- ``auda``: ``smilejax.auda.AudaOptions`` (auda.md §11); ``auda_batch``: how the corpus is batched for extraction.
- ``train``: optimiser, objective and selection (realsmilenet.md §5-§6): Adam 1e-3, batch 16, L2 weight 0.001,
  ``selection`` "val" (inner validation split of ``val_fraction`` of the training subjects) or "fixed";
  ``epochs`` > 0 overrides every model's own ``epochs``; ``bucket``: time axes are padded to multiples of it.
- ``models.<method>``: architecture ``name`` (``smilejax.models.build``), its options, ``epochs``, ``standardize``
  (per-feature standardisation with training-split statistics, realsmilenet.md §7), and for fusions ``members``.
- ``timing``: per-video timing (batch 1, median over the test videos after a warm-up pass).
"""

from __future__ import annotations

import ml_collections

from smilejax import methods


def paper_config() -> ml_collections.ConfigDict:
  """The paper's settings (realsmilenet.md §5-§7, auda.md §11) with the project's proposed defaults."""
  c = ml_collections.ConfigDict()
  c.name = "paper"
  c.seed = 0
  c.folds = tuple(range(1, 11))
  # Table 1's rows, in order (smilejax.methods); a dataset without videos runs the AUDA ones only.
  c.methods = methods.METHODS

  c.data = ml_collections.ConfigDict()
  c.data.root = ""  # UvA-NEMO-layout folder; "" = synthetic corpus
  c.data.dataset = ""  # name in reports; "" = "synthetic" (built-in corpus), else the corpus folder's name
  c.data.require_root = False  # True: an empty root is an error (configs/uvanemo.py)
  c.data.with_video = True  # False: AU + SI only, no videos (configs/auda_package.py)
  c.data.synthetic_size = "default"
  c.data.synthetic_seed = 0
  c.data.synthetic_subjects = 0  # > 0: override the size's subject count (synthetic.md §5: 110 for "default")
  c.data.synthetic_dir = ""  # "" = ~/.cache/smilejax/synthetic-<size>[-n<subjects>]-seed<seed>
  c.data.cache_dir = ""  # "" = <root>/.cache (decoded frames, AUDA features)
  c.data.frame_size = 48  # RealSmileNet input, realsmilenet.md §2
  c.data.frame_stride = 0  # 0 = round(fps / 10): 5 at 50 fps
  # Reading and judging the files (smilejax.data.DATA_DEFAULTS holds the same values for older run configs).
  c.data.fps = 0.0  # > 0: the frame rate of every OpenFace CSV, overriding its timestamps; 0 = from the timestamps
  c.data.plausible_fps = (10.0, 240.0)  # a rate read from timestamps outside this is refused (set data.fps)
  c.data.max_gap_seconds = 0.2  # auda.md §1: longest run of failed OpenFace frames filled (10 frames at 50 fps)
  c.data.max_failed_fraction = 0.10  # auda.md §1: more failed frames than this refuses the CSV
  c.data.max_frame_mismatch = 2  # an mp4 and its CSV may differ by this many frames ...
  c.data.max_duration_mismatch = 0.02  # ... and by this fraction of their duration; beyond, the video is bad input
  c.data.au_source = "openface"  # who wrote the CSVs: "openface", or "mediapipe" (bin/extract_aus: proxies + crops)
  c.data.on_bad_video = "fail"  # "fail": stop, listing every bad video; "skip": leave them out, listed in the report

  c.auda = ml_collections.ConfigDict()  # auda.md §11 (fields of smilejax.auda.AudaOptions)
  c.auda.clip_au = False
  c.auda.windows = (9, 27)
  c.auda.base_fps = 50.0
  c.auda.legacy_edge = True
  c.auda.phase_window = 27
  c.auda.phase_stability = 3
  c.auda.min_smile_seconds = 1.0
  c.auda.segments = ("onset", "apex", "offset", "whole_smile")
  c.auda.cross_au_abs = True
  c.auda.time_unit = "seconds"

  c.auda_batch = ml_collections.ConfigDict()
  c.auda_batch.bucket = 64  # AU series padded to multiples of 64 frames for extraction
  # Videos per compiled extraction call (taken in order of length) and chunks computed at once in threads: the
  # fastest setting on a 2-core CPU (benchmarks/README.md); result-neutral up to float32 summation order.
  c.auda_batch.chunk_size = 128
  c.auda_batch.workers = 2

  c.train = ml_collections.ConfigDict()  # realsmilenet.md §5-§6
  c.train.batch_size = 16
  # Evaluation has no coupling between videos, so batch 1 gives the same outputs; it pads each video only to its own
  # bucket and shares the compiled functions with the per-video timing.
  c.train.eval_batch_size = 1
  c.train.learning_rate = 1e-3
  c.train.adam_b1 = 0.9
  c.train.adam_b2 = 0.999
  c.train.adam_eps = 1e-8
  c.train.l2_weight = 1e-3  # x sum of unsquared L2 norms of every parameter tensor
  c.train.selection = "val"  # "val" | "fixed"
  c.train.val_fraction = 0.1  # of the training subjects
  c.train.epochs = 0  # > 0: override every model's epochs
  c.train.bucket = 16  # time axis padded to a multiple of this
  # Save the latest epoch at most every 30 s (plus every new best and the last epoch): a save costs more than an
  # epoch of the small models, and resuming repeats unsaved epochs exactly (smilejax.train.fit).
  c.train.checkpoint_interval_s = 30.0
  # RealSmileNet's training batch is split over this many devices (0 = all: on a CPU one per core, set up by bin/;
  # 1 = one device). The result is that of one device up to float32 summation order (smilejax.train.steps).
  c.train.data_parallel = 0

  # Epochs. RealSmileNet: [O]'s demo default, 10 (realsmilenet.md §5). The AUDA models and the fusion heads: the
  # sources give no number; 15 and 10 leave room for the validation-based selection (realsmilenet.md §6) beyond
  # the epochs where their validation accuracy peaks on the synthetic corpus (benchmarks/README.md).
  c.models = ml_collections.ConfigDict()
  c.models.realsmilenet = ml_collections.ConfigDict(
    dict(
      name="realsmilenet",
      epochs=10,
      standardize=False,  # [O] demo default: 10 epochs
      hidden=8,
      encoder_channels=(4, 6),
      nonlocal_channels=4,
      final_channels=10,
      encoder_dropout=0.2,
      final_dropout=0.5,
      forget_bias=0.0,  # added to the ConvLSTM forget-gate bias at init; 0 = [O]'s init (PyTorch default)
      bn_momentum=0.9,
      bn_epsilon=1e-5,
      scan_unroll=1,
    )
  )
  c.models.framewise = ml_collections.ConfigDict(
    dict(
      name="framewise",
      epochs=15,
      standardize=True,
      hidden=150,
      branch_features=150,
      dropout=0.5,
      final_branch="dense",
      bn_momentum=0.9,
      bn_epsilon=1e-5,
      scan_unroll=1,
    )
  )
  for name in ("auwise", "crossau"):
    c.models[name] = ml_collections.ConfigDict(
      dict(name=name, epochs=15, standardize=True, branch_features=150, dropout=0.5, bn_momentum=0.9, bn_epsilon=1e-5)
    )
  c.models.fusion_auda = ml_collections.ConfigDict(
    dict(name="fusion", epochs=10, standardize=False, members=methods.FUSION_MEMBERS["fusion_auda"])
  )
  c.models.fusion_all = ml_collections.ConfigDict(
    dict(name="fusion", epochs=10, standardize=False, members=methods.FUSION_MEMBERS["fusion_all"])
  )

  c.timing = ml_collections.ConfigDict()
  c.timing.enabled = True
  c.timing.warmup = True  # one untimed pass over the videos first (compiles every bucket)
  c.timing.max_videos = 0  # 0 = every test video of the fold
  c.timing.auda_bucket = 128  # AU series padded to multiples of this for the batch-1 extraction
  return c
