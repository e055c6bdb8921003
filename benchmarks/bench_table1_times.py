"""Table 1's "Time [ms]" column on the backend at hand, without a corpus on disk.

Runs ``smilejax.timing.time_methods`` -- the exact code `bin/run_fold` uses for the column -- on synthetic
videos simulated in memory (no mp4 decoding, no ffmpeg needed) with freshly initialised models: the time of a
forward pass does not depend on the weights. Useful where the corpus cannot be generated (a GPU machine without
ffmpeg) and to compare backends in one table.

    python benchmarks/bench_table1_times.py --videos=16 [--out=times.json]

Prints one line per method: median ms per video (batch 1, whole video from its decoded 48x48 frames and AU/SI
series to the decision, after a warm-up pass), and the backend.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from smilejax import methods, runtime, synthetic, timing, train  # noqa: E402
from smilejax.io.video import resize_frames  # noqa: E402
from smilejax.sequences import default_frame_stride, sample_frame_indices  # noqa: E402


def paper_config():
  spec = importlib.util.spec_from_file_location("_configs", ROOT / "configs" / "__init__.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.paper_config()


class _Model:
  """The part of ``train.FitResult`` that ``time_methods`` uses: eval-mode ``predict``."""

  def __init__(self, steps, variables):
    self.steps, self.variables = steps, variables

  def predict(self, x, lengths):
    return train.predict_batch(self.steps, self.variables, None, x, lengths)


def simulated_prepared(n_videos: int, *, seed: int):
  """A stand-in for ``prepare.Prepared`` holding ``n_videos`` default-size synthetic clips."""
  cfg = synthetic.get_config("default")
  videos, frames, indices = {}, {}, {}
  subject = 1
  while len(videos) < n_videos:
    subj = synthetic.draw_subject(seed, subject)
    for label in (0, 1):
      sim = synthetic.simulate_video(seed, subj, label, 1, config=cfg, render=True)
      n = sim.au_TxA.shape[0]
      idx = sample_frame_indices(n, default_frame_stride(sim.fps))
      videos[sim.id] = types.SimpleNamespace(au_TxA=sim.au_TxA, si_T=sim.si_T, n_frames=n, fps=sim.fps)
      frames[sim.id] = resize_frames(sim.frames_TxHxWxC[idx], 48)
      indices[sim.id] = idx
    subject += 1
  ids = list(videos)[:n_videos]
  prepared = types.SimpleNamespace(corpus=types.SimpleNamespace(videos=videos), frames=frames, frame_indices=indices)
  return prepared, ids


def fresh_models(config, prepared, ids):
  """Randomly initialised base models and fusion heads with the config's architectures."""
  vid = ids[0]
  example = {
    "realsmilenet": prepared.frames[vid].astype(np.float32) / 255.0,
    "framewise": np.zeros((len(prepared.frame_indices[vid]), 154), np.float32),
    "auwise": np.zeros((476,), np.float32),
    "crossau": np.zeros((4352,), np.float32),
  }
  results = {}
  for method in methods.BASE_METHODS:
    mc = config.models[method]
    steps = train.get_steps(mc.name, mc, config.train)
    state = train.init_state(steps, example[method], seed=0)
    results[method] = _Model(steps, state.variables)
  widths = {"realsmilenet": 250, "framewise": 150, "auwise": 150, "crossau": 150}
  for method in methods.FUSION_METHODS:
    mc = config.models[method]
    steps = train.get_steps(mc.name, mc, config.train)
    width = sum(widths[m] for m in mc.members)
    state = train.init_state(steps, np.zeros((width,), np.float32), seed=0)
    results[method] = _Model(steps, state.variables)
  return results


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--videos", type=int, default=16)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  config = paper_config()
  t0 = time.time()
  prepared, ids = simulated_prepared(args.videos, seed=args.seed)
  lengths = [prepared.corpus.videos[i].n_frames for i in ids]
  results = fresh_models(config, prepared, ids)
  ms = timing.time_methods(config, prepared, results, ids)
  backend = runtime.backend_name()
  out = {
    "backend": backend,
    "videos": len(ids),
    "frames_median": float(np.median(lengths)),
    "ms_per_video": ms,
    "wall_s": round(time.time() - t0, 1),
  }
  print(f"backend: {backend}; {len(ids)} videos, median {np.median(lengths):.0f} frames at 50 fps")
  for method in methods.METHODS:
    print(f"  {methods.METHOD_NAMES[method]:<26} {ms[method]:8.2f} ms/video")
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
  main()
