"""A/B of the RealSmileNet training step: two versions of the package compiled in one process, steps interleaved.

    git archive <commit> | tar -x -C /tmp/base          # the baseline: any checkout of the repository
    taskset -c 0 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false" \\
        .venv/bin/python benchmarks/ab_train_step.py --baseline=/tmp/base [--steps=15]

Both versions train on the same random batch (B = 16, T = 50, Adam, BCE on the logit), alternating step by step so
that machine noise (±10 % here) hits both alike; prints median and min per version. Not a test.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import numpy as np
from bench_realsmilenet import jax_setup  # this directory is on sys.path when the script runs


def load_models(root: str):
  """``smilejax.models`` imported from the checkout at ``root`` (modules of any other checkout unloaded first)."""
  for name in [k for k in sys.modules if k == "smilejax" or k.startswith("smilejax.")]:
    del sys.modules[name]
  sys.path.insert(0, root)
  try:
    import smilejax.models as models
  finally:
    sys.path.pop(0)
  return models


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--baseline", required=True, help="root of the baseline checkout")
  parser.add_argument(
    "--current",
    default=str(pathlib.Path(__file__).resolve().parents[1]),
    help="root of the checkout under test (default: this one)",
  )
  parser.add_argument("--steps", type=int, default=15)
  args = parser.parse_args()
  runs = {}
  for name, root in (("baseline", args.baseline), ("current", args.current)):
    models = load_models(root)
    print(f"{name}: {models.__file__}")
    j = jax_setup(models, 16, 50)
    batch = (j.frames, j.lengths, j.labels, j.key)
    state = [j.variables["params"], j.variables["batch_stats"], j.opt_state]
    t0 = time.perf_counter()
    jax.block_until_ready(j.step(*state, *batch))
    print(f"{name}: compile + first step {time.perf_counter() - t0:.1f} s", flush=True)
    runs[name] = (j.step, state, batch, [])
  for i in range(args.steps):
    for name in ("baseline", "current") if i % 2 else ("current", "baseline"):
      step, state, batch, times = runs[name]
      t0 = time.perf_counter()
      out = step(*state, *batch)
      jax.block_until_ready(out)
      state[:] = out[:3]
      times.append(time.perf_counter() - t0)
  for name, (_, _, _, times) in runs.items():
    print(f"{name}: median {1e3 * np.median(times):.0f} ms  min {1e3 * np.min(times):.0f} ms  (n={len(times)})")


if __name__ == "__main__":
  main()
