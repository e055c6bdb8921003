"""Benchmark: all AUDA features (frame-wise, AU-wise, cross-AU, phases) for a batch of synthetic-like videos.

Run manually (not a test):

    .venv/bin/python benchmarks/bench_auda.py                    # 1240 videos, 5 repeats, NumPy reference on 8
    .venv/bin/python benchmarks/bench_auda.py --n_videos=200 --repeats=3 --ref_subset=4
    git worktree add --detach /tmp/auda_old <commit>        # A/B against an older version, same process
    .venv/bin/python benchmarks/bench_auda.py --baseline=/tmp/auda_old/smilejax/auda --ref_subset=0
    # (versions before the package, issue 14: git show <commit>:smilejax/auda.py > /tmp/auda_old.py)

The videos are generated here (random walks + a smile-shaped bump, 50 fps, 4-10 s), so the benchmark does not
depend on the corpus generator. smilejax.auda.extract_batch is timed end to end (host arrays in, host arrays out:
validation, phase detection in float64, features in float32); the first call (compilation) is reported separately.
The plain-loop NumPy reference (tests/auda_reference_numpy.py) is timed on a subset and extrapolated. Results and
the machine are printed; copy them into benchmarks/README.md.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the NumPy reference lives next to the tests

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_videos", 1240, "videos in the batch")
flags.DEFINE_integer("repeats", 5, "timed repetitions (after one compile/warm-up call)")
flags.DEFINE_integer("ref_subset", 8, "videos timed with the NumPy reference (0: skip)")
flags.DEFINE_integer("chunk_size", 16, "extract_batch chunk size")
flags.DEFINE_integer("bucket", 64, "extract_batch time bucket (frames)")
flags.DEFINE_integer("workers", 1, "extract_batch workers (chunks computed at once, in threads)")
flags.DEFINE_bool(
  "xla_single_thread",
  False,
  "switch XLA's intra-op threading off (sets XLA_FLAGS before jax is imported); use with --workers",
)
flags.DEFINE_float("fps", 50.0, "frame rate")
flags.DEFINE_integer("seed", 0, "random seed")
flags.DEFINE_bool("check", True, "compare the JAX features with the NumPy reference on the subset")
flags.DEFINE_string(
  "baseline",
  None,
  "another version of smilejax.auda: its package folder (e.g. in `git worktree add --detach "
  "/tmp/auda_old <commit>`: /tmp/auda_old/smilejax/auda) or a single auda.py of the versions "
  "before the package; several, comma-separated: timed in the same process, runs interleaved with "
  "the current module (an A/B on a busy machine)",
)


def make_videos(n: int, fps: float, seed: int):
  """n synthetic-like videos: (au [T, 17] float32, si [T] float64), T ~ U[4 s, 10 s]; one or two smiles each."""
  import numpy as np

  rng = np.random.default_rng(seed)
  videos = []
  for _ in range(n):
    t_len = int(rng.integers(int(4 * fps), int(10 * fps) + 1))
    t = np.arange(t_len) / fps
    smile = np.zeros(t_len)
    for _ in range(int(rng.integers(1, 3))):
      on = rng.uniform(0.3, 0.6) * t[-1]
      rise, hold, fall = rng.uniform(0.3, 1.0), rng.uniform(0.5, 2.0), rng.uniform(0.5, 1.5)
      shape = np.clip((t - on) / rise, 0, 1) * np.clip(1 - (t - on - rise - hold) / fall, 0, 1)
      smile = np.maximum(smile, shape * rng.uniform(0.5, 1.0))
    si = 0.025 * smile - 0.015 + np.cumsum(rng.normal(0, 2e-4, t_len))
    weights = rng.uniform(0, 1, 17) * (rng.uniform(0, 1, 17) < 0.5)
    weights[[4, 8, 14]] = rng.uniform(1.0, 3.0, 3)  # AU6, AU12, AU25 follow the smile
    au = np.cumsum(rng.normal(0, 0.03, (t_len, 17)), axis=0) + smile[:, None] * weights + rng.uniform(0, 0.5, 17)
    au = np.round(au, 2)  # OpenFace writes two decimals
    videos.append((au.astype(np.float32), si))
  return videos


def load_baseline(path: str, alias: str):
  """Another version of smilejax.auda from ``path``: a package folder (imported as smilejax.auda for the time of
  its import, so that its modules import each other, then the current package is put back) or a single file."""
  import importlib.util

  import smilejax

  src = Path(path)
  if src.is_file():
    spec = importlib.util.spec_from_file_location(alias, src)
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module
  current = {k: m for k, m in sys.modules.items() if k == "smilejax.auda" or k.startswith("smilejax.auda.")}
  for k in current:
    del sys.modules[k]
  try:
    spec = importlib.util.spec_from_file_location(
      "smilejax.auda", src / "__init__.py", submodule_search_locations=[str(src)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["smilejax.auda"] = module
    spec.loader.exec_module(module)
  finally:
    for k in [k for k in sys.modules if k == "smilejax.auda" or k.startswith("smilejax.auda.")]:
      del sys.modules[k]
    sys.modules.update(current)
    smilejax.auda = current["smilejax.auda"]
  return module


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
      if line.startswith("Model name:"):
        return line.split(":", 1)[1].strip()
  except (OSError, subprocess.CalledProcessError):
    pass
  return platform.processor() or "unknown"


def main(argv):
  del argv
  if FLAGS.xla_single_thread:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
  import auda_reference_numpy as ref
  import jax
  import numpy as np

  from smilejax import auda

  fps = FLAGS.fps
  videos = make_videos(FLAGS.n_videos, fps, FLAGS.seed)
  lengths = np.array([len(s) for _, s in videos], np.int32)
  t_max = int(lengths.max())
  au = np.zeros((len(videos), t_max, 17), np.float32)
  si = np.zeros((len(videos), t_max), np.float64)
  for i, (a, s) in enumerate(videos):
    au[i, : len(s)] = a
    si[i, : len(s)] = s
  n = len(videos)
  print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
  print(f"command: {' '.join([Path(sys.executable).name] + sys.argv)}")
  print(f"cpu: {cpu_model()}; logical cpus: {os.cpu_count()}; load average: {os.getloadavg()}")
  print(f"jax {jax.__version__} ({jax.default_backend()}), numpy {np.__version__}, python {platform.python_version()}")
  print(
    f"batch: {n} videos at {fps:g} fps, {lengths.min()}-{lengths.max()} frames (mean {lengths.mean():.0f}), "
    f"chunk_size={FLAGS.chunk_size}, bucket={FLAGS.bucket}, workers={FLAGS.workers}, "
    f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
  )

  modules = {"smilejax.auda": auda}
  if FLAGS.baseline:
    modules = {
      f"baseline {path}": load_baseline(path, f"auda_baseline{i}") for i, path in enumerate(FLAGS.baseline.split(","))
    }
    modules["smilejax.auda"] = auda

  def run(module):
    return module.extract_batch(
      au, si, lengths, fps=fps, chunk_size=FLAGS.chunk_size, bucket=FLAGS.bucket, workers=FLAGS.workers
    )

  first, walls, cpus, outs = {}, {}, {}, {}
  for name, module in modules.items():
    t0 = time.perf_counter()
    outs[name] = run(module)
    first[name] = time.perf_counter() - t0
  for _ in range(FLAGS.repeats):
    for name, module in modules.items():  # interleaved: both see the same machine load
      c0, t0 = time.process_time(), time.perf_counter()
      run(module)
      walls.setdefault(name, []).append(time.perf_counter() - t0)
      cpus.setdefault(name, []).append(time.process_time() - c0)
  for name in modules:
    best, med = min(walls[name]), statistics.median(walls[name])
    print(f"{name}.extract_batch (JAX, float32 features + float64 phases):")
    print(f"  first call incl. compilation: {first[name]:.2f} s")
    print(
      f"  wall over {FLAGS.repeats} runs: best {best * 1e3:.1f} ms = {best / n * 1e3:.3f} ms/video "
      f"({n / best:.0f} videos/s); median {med * 1e3:.1f} ms = {med / n * 1e3:.3f} ms/video "
      f"({n / med:.0f} videos/s)"
    )
    print(
      f"  process CPU time (all threads): best {min(cpus[name]) / n * 1e3:.3f} ms/video, "
      f"median {statistics.median(cpus[name]) / n * 1e3:.3f} ms/video"
    )
    print(f"  videos without a detected smile: {int(outs[name].no_smile_detected_B.sum())} of {n}")
  for name in list(modules)[:-1]:
    a, b = outs[name], outs["smilejax.auda"]
    print(
      f"  {name} vs current: phases equal {np.array_equal(a.phases_BxT, b.phases_BxT)}; largest absolute "
      f"difference frame {np.abs(a.frame_BxTxD - b.frame_BxTxD).max():.1e}, "
      f"au_wise {np.abs(a.au_wise_BxD - b.au_wise_BxD).max():.1e}, "
      f"cross_au {np.abs(a.cross_au_BxD - b.cross_au_BxD).max():.1e}"
    )
  out = outs["smilejax.auda"]
  best = min(walls["smilejax.auda"])

  k = min(FLAGS.ref_subset, n)
  if k:
    t0 = time.perf_counter()
    refs = [ref.ref_extract(videos[i][0].astype(np.float64), videos[i][1], fps=fps) for i in range(k)]
    ref_time = time.perf_counter() - t0
    print(
      f"NumPy reference (tests/auda_reference_numpy.py, plain float64 loops), timed on {k} videos, "
      f"EXTRAPOLATED to {n}: {ref_time / k * 1e3:.1f} ms/video, {ref_time / k * n:.1f} s for the batch "
      f"(speed-up of the JAX batch: {ref_time / k / (best / n):.0f}x)"
    )
    if FLAGS.check:
      worst = {"frame": 0.0, "au_wise": 0.0, "cross_au": 0.0}
      phases_equal = 0
      for i, r in enumerate(refs):
        m = lengths[i]
        scale = np.maximum(np.abs(r["frame"]).max(axis=0), 1e-12)
        worst["frame"] = max(worst["frame"], float((np.abs(out.frame_BxTxD[i, :m] - r["frame"]) / scale).max()))
        for key, got in (("au_wise", out.au_wise_BxD[i]), ("cross_au", out.cross_au_BxD[i])):
          worst[key] = max(worst[key], float(np.abs(got - r[key]).max() / max(np.abs(r[key]).max(), 1e-12)))
        phases_equal += int(np.array_equal(out.phases_BxT[i, :m], r["phases"]))
      print(
        f"  check vs reference on the subset: phases equal {phases_equal}/{k}; largest error / column max: "
        + ", ".join(f"{key} {v:.1e}" for key, v in worst.items())
      )


if __name__ == "__main__":
  app.run(main)
