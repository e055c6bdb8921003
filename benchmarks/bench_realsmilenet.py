"""RealSmileNet speed benchmark (spec ``realsmilenet.md`` §8). Run by hand; not a test.

    .venv/bin/python benchmarks/bench_realsmilenet.py [--torch-python /tmp/torchvenv/bin/python] [--repeats 30]

Measures, each case in its own subprocess (so peak memory is per case):

* forward, evaluation mode, batch 1, T = 20/40/60/130 sampled frames, pinned to one core (``taskset -c 0``) with XLA
  single-threaded (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``): ms per video;
* forward, batch 16, T = 40, all cores: ms per video;
* one training step (forward + backward + Adam, BCE on the logit, batch 16, T = 50), 1 core and all cores;

compiled functions, compilation excluded, median (and min) of ``--repeats`` >= 20 timed calls, peak RSS from
``resource.getrusage``. With ``--torch-python`` (an interpreter with PyTorch; never the project venv) the same
cases run on a PyTorch model of the same ``org`` architecture, written here from the spec (§3), in the same run,
and the table gives the ratio. Without it, the spec's recorded baseline (17.5 ms at T = 40, 49 ms at T = 130,
1.2 s per training step) is quoted.

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
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

# name -> (kind, batch, T, single core)
CASES = {
    "fwd1_T20": ("forward", 1, 20, True),
    "fwd1_T40": ("forward", 1, 40, True),
    "fwd1_T60": ("forward", 1, 60, True),
    "fwd1_T130": ("forward", 1, 130, True),
    "fwd16_T40": ("forward", 16, 40, False),
    "train1_B16_T50": ("train", 16, 50, True),
    "train16_B16_T50": ("train", 16, 50, False),
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
def run_jax(kind: str, b: int, t: int, repeats: int, conv_impl: str) -> dict:
  import jax
  import jax.numpy as jnp
  import optax

  from smilejax import models

  model = models.build("realsmilenet", conv_impl=conv_impl)
  rng = np.random.default_rng(0)
  frames = jnp.asarray(rng.random((b, t, 48, 48, 3), dtype=np.float32))
  lengths = jnp.full((b,), t, jnp.int32)
  labels = jnp.asarray(rng.integers(0, 2, b).astype(np.float32))
  variables = jax.jit(lambda: model.init({"params": jax.random.key(0)}, frames[:1, :2], lengths[:1] * 0 + 2,
                                         train=False))()
  t_compile = time.perf_counter()
  if kind == "forward":
    fwd = jax.jit(lambda v, x, n: model.apply(v, x, n, train=False)[0])
    jax.block_until_ready(fwd(variables, frames, lengths))
    compile_s = time.perf_counter() - t_compile
    med, best = _time(lambda: jax.block_until_ready(fwd(variables, frames, lengths)), repeats)
  else:
    tx = optax.adam(1e-3)
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = tx.init(params)

    def loss_fn(p, s, x, n, y, key):
      (logit, _), upd = model.apply({"params": p, "batch_stats": s}, x, n, train=True, rngs={"dropout": key},
                                    mutable=["batch_stats"])
      return optax.sigmoid_binary_cross_entropy(logit, y).mean(), upd["batch_stats"]

    @jax.jit
    def step(p, s, o, x, n, y, key):
      (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, n, y, key)
      updates, o = tx.update(grads, o, p)
      return optax.apply_updates(p, updates), s, o, loss

    state = [params, stats, opt_state]
    key = jax.random.key(1)
    jax.block_until_ready(step(*state, frames, lengths, labels, key))
    compile_s = time.perf_counter() - t_compile

    def one():
      state[0], state[1], state[2], loss = step(*state, frames, lengths, labels, key)
      jax.block_until_ready(loss)

    med, best = _time(one, repeats)
  return {"median_ms": med * 1e3, "min_ms": best * 1e3, "compile_s": compile_s}


# ------------------------------------------------------------------------------------------------------- PyTorch
def run_torch(kind: str, b: int, t: int, repeats: int, threads: int) -> dict:
  """The ``org`` architecture of spec §3 in PyTorch (front-padding-free: all videos of the batch have length T)."""
  import torch
  from torch import nn

  torch.set_num_threads(threads)

  class ConvLSTM(nn.Module):
    def __init__(self, c_in, hid):
      super().__init__()
      self.hid = hid
      self.conv = nn.Conv2d(c_in + hid, 4 * hid, 3, padding=1)

    def forward(self, x_btchw):
      bb, tt, _, hh, ww = x_btchw.shape
      h = x_btchw.new_zeros(bb, self.hid, hh, ww)
      c = torch.zeros_like(h)
      for i in range(tt):
        z = self.conv(torch.cat([x_btchw[:, i], h], 1))
        zi, zf, zo, zg = torch.split(z, self.hid, 1)
        c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
        h = torch.sigmoid(zo) * torch.tanh(c)
      return h

  class NonLocal(nn.Module):
    def __init__(self, c, ci):
      super().__init__()
      self.theta, self.phi, self.g = (nn.Conv2d(c, ci, 1) for _ in range(3))
      self.w = nn.Sequential(nn.Conv2d(ci, c, 1), nn.BatchNorm2d(c))
      nn.init.zeros_(self.w[1].weight)
      nn.init.zeros_(self.w[1].bias)
      self.pool = nn.MaxPool2d(2)

    def forward(self, x):
      bb, _, hh, ww = x.shape
      th = self.theta(x).flatten(2).transpose(1, 2)
      ph = self.pool(self.phi(x)).flatten(2)
      g = self.pool(self.g(x)).flatten(2).transpose(1, 2)
      f = th @ ph / ph.shape[-1]
      y = (f @ g).transpose(1, 2).reshape(bb, -1, hh, ww)
      return x + self.w(y)

  class Org(nn.Module):
    def __init__(self):
      super().__init__()
      self.ta = nn.Conv2d(3, 3, 3, padding=1)
      with torch.no_grad():
        self.ta.weight.zero_()
        self.ta.weight[:, :, 1, 1] = 1.0
        self.ta.bias.zero_()
      self.enc = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                               nn.AvgPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                               nn.AvgPool2d(2), nn.Dropout2d(0.2))
      self.lstm = ConvLSTM(6, 8)
      self.nl = NonLocal(8, 4)
      self.final = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(8, 10, 2), nn.BatchNorm2d(10), nn.ReLU(),
                                 nn.Dropout(0.5), nn.Flatten(), nn.Linear(250, 1))

    def forward(self, x_btchw):
      bb, tt = x_btchw.shape[:2]
      d = torch.cat([torch.zeros_like(x_btchw[:, :1]), x_btchw[:, 1:] - x_btchw[:, :-1]], 1)
      a = self.ta(d.flatten(0, 1)).view_as(x_btchw)
      x = x_btchw + x_btchw * a
      e = self.enc(x.flatten(0, 1))
      h = self.lstm(e.view(bb, tt, *e.shape[1:]))
      return self.final(self.nl(h))[:, 0]

  torch.manual_seed(0)
  model = Org()
  n_params = sum(p.numel() for p in model.parameters())
  assert n_params == 5273, n_params
  x = torch.rand(b, t, 3, 48, 48)
  y = torch.randint(0, 2, (b,)).float()
  if kind == "forward":
    model.eval()

    def one():
      with torch.no_grad():
        model(x)
  else:
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    lossf = nn.BCEWithLogitsLoss()

    def one():
      opt.zero_grad()
      lossf(model(x), y).backward()
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


def _run_case(python: str, framework: str, case: str, repeats: int, conv_impl: str = "phase") -> dict:
  _, _, _, single = CASES[case]
  env = dict(os.environ)
  cmd = [python, __file__, "--case", case, "--framework", framework, "--repeats", str(repeats),
         "--conv-impl", conv_impl]
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
  ap.add_argument("--conv-impl", default="phase", help="RealSmileNet conv_impl for the JAX model (phase | lax)")
  args = ap.parse_args()

  if args.case:  # subprocess: one measurement
    kind, b, t, single = CASES[args.case]
    if args.framework == "jax":
      res = run_jax(kind, b, t, args.repeats, args.conv_impl)
    else:
      res = run_torch(kind, b, t, args.repeats, threads=1 if single else os.cpu_count() or 1)
    per_video = res["median_ms"] / b if kind == "forward" else res["median_ms"]
    res.update(case=args.case, framework=args.framework, batch=b, T=t, single_core=single,
               per_unit_ms=per_video, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(res))
    return

  if args.repeats < 20:
    ap.error("--repeats must be >= 20 (spec §8)")
  cases = [c.strip() for c in args.cases.split(",") if c.strip()]
  print(f"CPU: {_cpu_model()}; {os.cpu_count()} logical CPUs; load average {os.getloadavg()}")
  results = []
  for case in cases:
    row = {"case": case, "conv_impl": args.conv_impl,
           "jax": _run_case(sys.executable, "jax", case, args.repeats, args.conv_impl)}
    if args.torch_python:
      row["torch"] = _run_case(args.torch_python, "torch", case, args.repeats)
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
    print(f"| {row['case']} | {jm:.2f} ({jb:.2f}) {unit} | {j['peak_rss_mb']:.0f} MB | {tcell} | "
          f"{spec if spec else '-'} | {ratio} |")
  if args.json:
    Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
