"""bin/ programs that train run with glibc's transparent-huge-page malloc (imported first by run_fold, run_all_folds).

XLA:CPU takes fresh memory for the buffers of every execution of a compiled program, and glibc hands such large
blocks out as new 4 KB pages: one RealSmileNet training step (B = 16, T = 50) took ~62 000 page faults (~250 MB of
pages zeroed by the kernel). With ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35) malloc asks for
transparent huge pages (kernel THP mode "madvise", the usual default, or "always"): ~500 faults per step, and the step
on one core of the 2-core development CPU took 378-504 ms instead of 560-850 ms (benchmarks/README.md). glibc reads
the tunable only when a process starts, so the program re-executes itself once with it set. Elsewhere (another libc,
THP off) the variable is ignored. ``SMILEJAX_NO_REEXEC=1`` turns this off. AUDA extraction alone gains nothing
consistent (1240 videos, 2 workers: 0.515 / 0.560 ms/video without, 0.584 / 0.589 with; one core 0.687 -> 0.636),
so bin/extract_features does not re-execute.
"""

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def reexec_with_hugepage_malloc() -> None:
  """Replace this process by the same command with ``TUNABLE`` added to GLIBC_TUNABLES, unless it is there (or
  SMILEJAX_NO_REEXEC is set, or this is not Linux)."""
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if not sys.platform.startswith("linux") or os.environ.get("SMILEJAX_NO_REEXEC") or "glibc.malloc.hugetlb" in tunables:
    return
  os.environ["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}" if tunables else TUNABLE
  sys.stdout.flush()
  sys.stderr.flush()
  os.execv(sys.executable, [sys.executable] + sys.argv)
