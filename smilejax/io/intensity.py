"""Smile-intensity (SI) series: one real value per video frame, one per line, no header.

Spec: ../shared/spec/auda.md sections 1 and 12 (the AUDA replication data's ``smile_intensities/<id>_*.txt``).
SI is required input (never replaced silently by an OpenFace output).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from smilejax.constants import AU_INDEX, AU_NAMES
from smilejax.errors import InputError

__all__ = ["read_smile_intensity", "write_smile_intensity"]


def read_smile_intensity(path: str | os.PathLike) -> np.ndarray:
  """float64 [T], one value per line. A final newline is optional; surrounding spaces (and a CR) are ignored.

  Raises InputError naming the file (and the line) for: a missing or empty file, a blank line, a value that is not
  a number, NaN or infinity.
  """
  path = Path(path)
  try:
    text = path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise InputError(f"{path}: smile-intensity file not found") from None
  except (OSError, UnicodeDecodeError) as err:
    raise InputError(f"{path}: cannot read smile-intensity file ({err.__class__.__name__})") from None
  lines = text.split("\n")
  if lines and lines[-1].strip() == "":
    lines.pop()  # the final newline
  if not lines:
    raise InputError(f"{path}: empty smile-intensity file")
  values = np.empty(len(lines), dtype=np.float64)
  for i, line in enumerate(lines):
    s = line.strip()
    if not s:
      raise InputError(f"{path}: blank line {i + 1} (expected one number per line)")
    try:
      v = float(s)
    except ValueError:
      raise InputError(f"{path}: line {i + 1} is not a number: {s[:40]!r}") from None
    if not np.isfinite(v):
      raise InputError(f"{path}: line {i + 1} is {s!r}; smile intensities must be finite")
    values[i] = v
  return values


def write_smile_intensity(path: str | os.PathLike, si_T: np.ndarray, *, decimals: int = 6) -> Path:
  """Write one value per line with ``decimals`` decimals and a final newline. Returns the path."""
  path = Path(path)
  si_T = np.asarray(si_T, dtype=np.float64).reshape(-1)
  if si_T.size == 0 or not np.all(np.isfinite(si_T)):
    raise ValueError("si_T must be a non-empty finite series")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(f"{v:.{decimals}f}\n" for v in si_T.tolist()), encoding="utf-8")
  return path


def si_proxy_column(si_proxy: str) -> int:
  """AU column of a flagged smile-intensity substitute such as "AU12" or "AU12_r" (auda.md §1: SI is required;
  a proxy is an explicit, flagged choice, never a silent one)."""
  name = si_proxy.strip().upper().removesuffix("_R")
  try:
    number = int(name.removeprefix("AU"))
  except ValueError:
    number = -1
  if not name.startswith("AU") or number not in AU_INDEX:
    raise InputError(f"si_proxy must name one of {', '.join(AU_NAMES)} (e.g. 'AU12'), got {si_proxy!r}")
  return AU_INDEX[number]
