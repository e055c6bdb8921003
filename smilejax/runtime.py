"""Process set-up of the command-line programs, in one call: ``setup`` (malloc, CPU devices, XLA compile cache).

- Malloc: XLA:CPU takes fresh memory for the buffers of every execution, and glibc hands large blocks out as new
  4 KB pages that the kernel zeroes; with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35) it uses
  transparent huge pages instead (far fewer page faults; benchmarks/README.md). glibc reads the tunable only when a
  process starts, so the program re-executes itself once with it set. ``SMILEJAX_NO_REEXEC=1`` turns this off.
- CPU devices: one JAX device per core, so the data-parallel training step runs one batch shard per core.
- Compile cache: compiled XLA programs persist on disk, so a rerun or a resumed run skips most compilation.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import jax
from absl import logging

HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"
DEFAULT_COMPILE_CACHE = "~/.cache/smilejax/jax"


def reexec_with_hugepage_malloc() -> None:
  """Replace this process by the same command with ``HUGEPAGE_TUNABLE`` added to GLIBC_TUNABLES, unless it is there
  (or SMILEJAX_NO_REEXEC is set, or this is not Linux)."""
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if not sys.platform.startswith("linux") or os.environ.get("SMILEJAX_NO_REEXEC") or "glibc.malloc.hugetlb" in tunables:
    return
  os.environ["GLIBC_TUNABLES"] = f"{tunables}:{HUGEPAGE_TUNABLE}" if tunables else HUGEPAGE_TUNABLE
  sys.stdout.flush()
  sys.stderr.flush()
  os.execv(sys.executable, [sys.executable] + sys.argv)


def configure_cpu_devices(n: int = 0) -> None:
  """Present the CPU to JAX as ``n`` devices (0 = one per core this process may use). Effective only before JAX
  initialises its backends; later, or where the user already set ``jax_num_cpu_devices``, it changes nothing."""
  n = n or len(os.sched_getaffinity(0))
  if jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return  # the user's own setting wins
  try:
    jax.config.update("jax_num_cpu_devices", n)
  except RuntimeError as e:  # the backends are already up
    logging.warning("configure_cpu_devices(%d) ignored: %s", n, e)


def enable_compile_cache(path: str) -> None:
  """Persist compiled XLA programs in ``path`` ('' = off)."""
  if not path:
    return
  cache = Path(path).expanduser()
  try:
    cache.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    logging.warning("compile cache %s unavailable (%s)", cache, e)
    return
  jax.config.update("jax_compilation_cache_dir", str(cache))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def setup(
  *, compile_cache: str = DEFAULT_COMPILE_CACHE, cpu_devices: int | None = 0, hugepage_malloc: bool = True
) -> None:
  """What every ``bin/`` program does first: huge-page malloc (re-executes the process once), ``cpu_devices`` CPU
  devices (None: leave JAX's default), the persistent compile cache (``compile_cache``, '' = off)."""
  if hugepage_malloc:
    reexec_with_hugepage_malloc()
  if cpu_devices is not None:
    configure_cpu_devices(cpu_devices)
  enable_compile_cache(compile_cache)


def backend_name() -> str:
  """ "cpu: <model name> (<n> cores)" or "<platform>: <device kind>" (fold_result.json ``backend``)."""
  dev = jax.devices()[0]
  if dev.platform != "cpu":
    return f"{dev.platform}: {dev.device_kind}"
  name = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.lower().startswith("model name"):
        name = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"cpu: {name} ({os.cpu_count()} cores)"
