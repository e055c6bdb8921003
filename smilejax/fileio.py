"""Atomic file writes and JSON conversion: the one way smilejax writes a file that a later run reads.

A file is written to a temporary name in its own folder and moved into place with ``os.replace``, so a reader sees
either the old file or the whole new one, never half of one (an interrupted run leaves no partial output).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary: bool = False) -> None:
  """Call ``write(file)`` on a temporary file next to ``path``, then move it to ``path``."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  try:
    with open(tmp, "wb" if binary else "w") as f:
      write(f)
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
  atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """``obj`` as indented, key-sorted JSON (one trailing newline)."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def jsonable(v: Any) -> Any:
  """``v`` (a ConfigDict, mapping, sequence or NumPy scalar, nested) as plain JSON types."""
  if hasattr(v, "to_dict"):
    v = v.to_dict()
  if isinstance(v, Mapping):
    return {str(k): jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [jsonable(x) for x in v]
  if isinstance(v, np.integer):
    return int(v)
  if isinstance(v, np.floating):
    return float(v)
  return v
