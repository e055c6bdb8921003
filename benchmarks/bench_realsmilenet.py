"""RealSmileNet speed benchmark (spec ``realsmilenet.md`` §8). Run by hand; not a test.

    .venv/bin/python benchmarks/bench_realsmilenet.py [--torch-python /tmp/torchvenv/bin/python] [--repeats 30]

Measures, each case in its own subprocess (so peak memory is per case):

* forward, evaluation mode, batch 1, T = 20/40/60/130 sampled frames, pinned to one core (``taskset -c 0``) with XLA
  single-threaded (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``): ms per video;
* forward, batch 16, T = 40, all cores: ms per video;
* one training step (forward + backward + Adam, BCE on the logit, batch 16, T = 50), 1 core and all cores;
* the training step ``bin/`` runs (``smilejax.train``: BCE + L2 + Adam) with the batch split over one JAX CPU device
  per core (``train16dp``; data parallel, see ``smilejax.train``); PyTorch's row for it is its all-cores step;
* the training step's forward alone (train mode, loss, no gradient; 1 core): with the step, where its time goes;

compiled functions, compilation excluded, median (and min) of ``--repeats`` >= 20 timed calls, peak RSS from
``resource.getrusage``. With ``--torch-python`` (an interpreter with PyTorch; never the project venv) the same
cases run on [O]'s ``org`` model in PyTorch (``benchmarks/torch_org.py``, written from the spec, §3, with [O]'s
module names; BCE on its sigmoid output, as [O]) in the same run, and the table gives the ratio. Without it, the
spec's recorded baseline (17.5 ms at T = 40, 49 ms at T = 130, 1.2 s per training step) is quoted.

Every case runs with glibc's transparent-huge-page malloc (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, as ``bin/``
runs; ``smilejax.runtime``), PyTorch's cases too; ``--malloc=default`` runs both without it.

The subprocess entry point is ``--case NAME`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SPEC_BASELINE_MS = {"fwd1_T20": 9.6, "fwd1_T40": 17.5, "fwd1_T60": 25.0, "fwd1_T130": 49.0, "train1_B16_T50": 1200.0}
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false"

# name -> (kind, batch, T, single core)
CASES = {
  "fwd1_T20": ("forward", 1, 20, True),
  "fwd1_T40": ("forward", 1, 40, True),
  "fwd1_T60": ("forward", 1, 60, True),
  "fwd1_T130": ("forward", 1, 130, True),
  "fwd16_T40": ("forward", 16, 40, False),
  "train1_B16_T50": ("train", 16, 50, True),
  "train16_B16_T50": ("train", 16, 50, False),
  "train16dp_B16_T50": ("train_dp", 16, 50, False),
  "trainfwd1_B16_T50": ("train_forward", 16, 50, True),
}


def _time(fn, repeats: int) -> tuple[float, float]:
  """(median, min) wall seconds of ``fn()`` over ``repeats`` calls after two warm-up calls."""
  fn()
  fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), float(np.min(times))


# ----------------------------------------------------------------------------------------------------------- JAX
def jax_setup(models, b: int, t: int, conv_impl: str = "cnhw"):
  """What the JAX cases time, built from the given ``smilejax.models`` module (``ab_train_step.py`` passes two
  checkouts' modules): the model and its variables, a random batch (B x T x 48 x 48 x 3, all frames real, random
  labels), ``loss_fn(params, batch_stats, frames, lengths, labels, key)`` (BCE on the logit, training mode) and a
  jitted Adam ``step(params, batch_stats, opt_state, frames, lengths, labels, key)``."""
  import types

  import jax
  import jax.numpy as jnp
  import optax

  model = models.build("realsmilenet", conv_impl=conv_impl)
  rng = np.random.default_rng(0)
  frames = jnp.asarray(rng.random((b, t, 48, 48, 3), dtype=np.float32))
  lengths = jnp.full((b,), t, jnp.int32)
  labels = jnp.asarray(rng.integers(0, 2, b).astype(np.float32))
  variables = jax.jit(
    lambda: model.init({"params": jax.random.key(0)}, frames[:1, :2], lengths[:1] * 0 + 2, train=False)
  )()

  def loss_fn(p, s, x, n, y, key):
    (logit, _), upd = model.apply(
      {"params": p, "batch_stats": s}, x, n, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
    )
    return optax.sigmoid_binary_cross_entropy(logit, y).mean(), upd["batch_stats"]

  tx = optax.adam(1e-3)

  @jax.jit
  def step(p, s, o, x, n, y, key):
    (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, n, y, key)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), s, o, loss

  return types.SimpleNamespace(
    model=model,
    variables=variables,
    frames=frames,
    lengths=lengths,
    labels=labels,
    key=jax.random.key(1),
    loss_fn=loss_fn,
    step=step,
    opt_state=tx.init(variables["params"]),
  )


def run_jax_data_parallel(b: int, t: int, repeats: int) -> dict:
  """The project's training step (``smilejax.train.get_steps`` with the paper config's RealSmileNet and training
  options), its batch split over one CPU device per core."""
  import jax

  from smilejax import runtime, train

  runtime.configure_cpu_devices()
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
  from configs import paper_config

  cfg = paper_config()
  steps = train.get_steps("realsmilenet", cfg.models.realsmilenet, dict(cfg.train))
  rng = np.random.default_rng(0)
  x = rng.random((b, t, 48, 48, 3), dtype=np.float32)
  lengths, y, w = np.full(b, t, np.int32), rng.integers(0, 2, b).astype(np.float32), np.ones(b, np.float32)
  state = [train.init_state(steps, x[0], seed=0)]
  t_compile = time.perf_counter()
  jax.block_until_ready(steps.train_step(state[0], x, lengths, y, w))
  compile_s = time.perf_counter() - t_compile

  def one():
    state[0], m = steps.train_step(state[0], x, lengths, y, w)
    jax.block_until_ready(m["loss"])

  med, best = _time(one, repeats)
  return {
    "median_ms": med * 1e3,
    "min_ms": best * 1e3,
    "compile_s": compile_s,
    "devices": 1 if steps.mesh is None else steps.mesh.size,
  }


def run_jax(kind: str, b: int, t: int, repeats: int, conv_impl: str) -> dict:
  import jax

  from smilejax import models

  if kind == "train_dp":
    return run_jax_data_parallel(b, t, repeats)
  j = jax_setup(models, b, t, conv_impl)
  params, stats = j.variables["params"], j.variables["batch_stats"]
  batch = (j.frames, j.lengths, j.labels, j.key)
  t_compile = time.perf_counter()
  if kind == "forward":
    fwd = jax.jit(lambda v, x, n: j.model.apply(v, x, n, train=False)[0])
    jax.block_until_ready(fwd(j.variables, j.frames, j.lengths))
    compile_s = time.perf_counter() - t_compile
    med, best = _time(lambda: jax.block_until_ready(fwd(j.variables, j.frames, j.lengths)), repeats)
  elif kind == "train_forward":
    train_fwd = jax.jit(j.loss_fn)
    jax.block_until_ready(train_fwd(params, stats, *batch))
    compile_s = time.perf_counter() - t_compile
    med, best = _time(lambda: jax.block_until_ready(train_fwd(params, stats, *batch)), repeats)
  else:
    state = [params, stats, j.opt_state]
    jax.block_until_ready(j.step(*state, *batch))
    compile_s = time.perf_counter() - t_compile

    def one():
      state[0], state[1], state[2], loss = j.step(*state, *batch)
      jax.block_until_ready(loss)

    med, best = _time(one, repeats)
  return {"median_ms": med * 1e3, "min_ms": best * 1e3, "compile_s": compile_s}


# ------------------------------------------------------------------------------------------------------- PyTorch
def run_torch(kind: str, b: int, t: int, repeats: int, threads: int) -> dict:
  """[O]'s ``org`` model (``benchmarks/torch_org.py``; all videos of the batch have length T, no front padding);
  training step as [O]'s: BCE on the sigmoid output, Adam."""
  import torch
  from torch import nn

  sys.path.insert(0, str(Path(__file__).resolve().parent))
  from torch_org import DeepSmileNet

  torch.set_num_threads(threads)

  torch.manual_seed(0)
  model = DeepSmileNet()
  n_params = sum(p.numel() for p in model.parameters())
  assert n_params == 5273, n_params
  x = torch.rand(b, t, 3, 48, 48)  # (C, W, H) images, as [O]
  y = torch.randint(0, 2, (b,)).float()
  lossf = nn.BCELoss()
  if kind == "forward":
    model.eval()

    def one():
      with torch.no_grad():
        model(x)
  elif kind == "train_forward":
    model.train()

    def one():
      with torch.no_grad():
        lossf(model(x)[:, 0], y)
  else:
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def one():
      opt.zero_grad()
      lossf(model(x)[:, 0], y).backward()
      opt.step()

  med, best = _time(one, repeats)
  return {"median_ms": med * 1e3, "min_ms": best * 1e3, "compile_s": 0.0}


# -------------------------------------------------------------------------------------------------------- driver
def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def _run_case(
  python: str, framework: str, case: str, repeats: int, conv_impl: str = "cnhw", malloc: str = "hugepages"
) -> dict:
  _, _, _, single = CASES[case]
  env = dict(os.environ)
  if malloc == "hugepages":
    from smilejax.runtime import HUGEPAGE_TUNABLE  # here, not at the top: the PyTorch interpreter lacks smilejax

    env["GLIBC_TUNABLES"] = HUGEPAGE_TUNABLE
  else:
    env.pop("GLIBC_TUNABLES", None)
  cmd = [
    python,
    __file__,
    "--case",
    case,
    "--framework",
    framework,
    "--repeats",
    str(repeats),
    "--conv-impl",
    conv_impl,
  ]
  if single:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA).strip()
    cmd = ["taskset", "-c", "0"] + cmd
  env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
  if out.returncode != 0:
    raise RuntimeError(f"{framework} {case} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--case", choices=sorted(CASES))
  ap.add_argument("--framework", choices=("jax", "torch"), default="jax")
  ap.add_argument("--repeats", type=int, default=30)
  ap.add_argument("--torch-python", default=None, help="interpreter with PyTorch installed (a separate venv)")
  ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
  ap.add_argument("--json", default=None, help="also write all results to this JSON file")
  ap.add_argument("--conv-impl", default="cnhw", help="RealSmileNet conv_impl for the JAX model (cnhw | lax)")
  ap.add_argument(
    "--malloc",
    choices=("hugepages", "default"),
    default="hugepages",
    help="glibc malloc of every case: with transparent huge pages (as bin/ runs) or the default",
  )
  args = ap.parse_args()

  if args.case:  # subprocess: one measurement
    kind, b, t, single = CASES[args.case]
    if args.framework == "jax":
      res = run_jax(kind, b, t, args.repeats, args.conv_impl)
    else:
      res = run_torch(kind, b, t, args.repeats, threads=1 if single else os.cpu_count() or 1)
    per_video = res["median_ms"] / b if kind == "forward" else res["median_ms"]
    res.update(
      case=args.case,
      framework=args.framework,
      batch=b,
      T=t,
      single_core=single,
      per_unit_ms=per_video,
      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(res))
    return

  if args.repeats < 20:
    ap.error("--repeats must be >= 20 (spec §8)")
  cases = [c.strip() for c in args.cases.split(",") if c.strip()]
  print(f"CPU: {_cpu_model()}; {os.cpu_count()} logical CPUs; load average {os.getloadavg()}; malloc {args.malloc}")
  results = []
  for case in cases:
    row = {
      "case": case,
      "conv_impl": args.conv_impl,
      "malloc": args.malloc,
      "jax": _run_case(sys.executable, "jax", case, args.repeats, args.conv_impl, args.malloc),
    }
    if args.torch_python:
      row["torch"] = _run_case(args.torch_python, "torch", case, args.repeats, malloc=args.malloc)
    results.append(row)
    print(json.dumps(row), flush=True)

  print()
  print("| case | JAX median (min) | JAX peak RSS | PyTorch median (min) | spec baseline | speed-up |")
  print("|---|---|---|---|---|---|")
  for row in results:
    kind, b, _, _ = CASES[row["case"]]
    unit = "ms/video" if kind == "forward" else "ms/step"
    div = b if kind == "forward" else 1
    j = row["jax"]
    jm, jb = j["median_ms"] / div, j["min_ms"] / div
    base = row.get("torch")
    tcell = f"{base['median_ms'] / div:.2f} ({base['min_ms'] / div:.2f})" if base else "-"
    ref = base["median_ms"] / div if base else SPEC_BASELINE_MS.get(row["case"])
    spec = SPEC_BASELINE_MS.get(row["case"])
    ratio = f"{ref / jm:.1f}x" if ref else "-"
    print(
      f"| {row['case']} | {jm:.2f} ({jb:.2f}) {unit} | {j['peak_rss_mb']:.0f} MB | {tcell} | "
      f"{spec if spec else '-'} | {ratio} |"
    )
  if args.json:
    Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
