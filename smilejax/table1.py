"""Table 1 reproduced from what the user has (notebooks/reproduce_table1.ipynb): a finished workdir is read back;
a UvA-NEMO folder, the AUDA replication data (or a corpus converted from it) or nothing (the synthetic corpus) is
run with ``experiment.run_all_folds``, which skips finished folds, so rerunning only loads.

The configs live in the repository's configs/ (not in the package): the caller passes that folder.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any, Sequence

from smilejax import constants, experiment
from smilejax import workdir as workdir_lib
from smilejax.errors import InputError
from smilejax.io import auda_package

SOURCE_KINDS = ("workdir", "uvanemo", "auda_package", "auda_corpus", "synthetic")
# The config (configs/<name>.py) that runs each kind of source.
CONFIG_OF = {"uvanemo": "uvanemo", "auda_package": "auda_package", "auda_corpus": "auda_package", "synthetic": "test"}


def load_config(path: str | os.PathLike) -> Any:
  """``get_config()`` of a config file, loaded by path (as ``bin/`` does with ``--config``)."""
  path = Path(path)
  if not path.is_file():
    raise InputError(f"{path}: config file not found")
  return runpy.run_path(str(path))["get_config"]()


def source_kind(source: str | os.PathLike | None) -> str:
  """What ``source`` is: "synthetic" (empty), "workdir" (config.json or fold_XX/), "auda_package" (action_units/),
  "uvanemo" (openface/ and videos/) or "auda_corpus" (openface/ and smile_intensities/, no videos: what
  ``bin/import_auda_package`` writes). Anything else is an InputError naming the folder."""
  if source is None or not str(source).strip():
    return "synthetic"
  root = Path(source).expanduser()
  if not root.is_dir():
    raise InputError(f"{root}: folder not found")
  if (root / workdir_lib.CONFIG).is_file() or workdir_lib.folds_present(root):
    return "workdir"
  if (root / auda_package.ACTION_UNITS_DIR).is_dir():
    return "auda_package"
  if (root / constants.OPENFACE_DIR).is_dir() and (root / constants.VIDEO_DIR).is_dir():
    return "uvanemo"
  if (root / constants.OPENFACE_DIR).is_dir() and (root / constants.SMILE_INTENSITY_DIR).is_dir():
    return "auda_corpus"
  raise InputError(
    f"{root}: not a workdir (config.json, fold_XX/), a corpus (openface/, smile_intensities/, videos/) or the AUDA "
    f"replication data (action_units/, smile_intensities/)"
  )


def reproduce(
  source: str | os.PathLike | None,
  workdir: str | os.PathLike,
  *,
  configs_dir: str | os.PathLike,
  folds: Sequence[int] | None = None,
  synthetic_dir: str | os.PathLike | None = None,
) -> Path:
  """The workdir that holds Table 1 for ``source`` (``source_kind``): a workdir source is returned as it is;
  otherwise its config (``CONFIG_OF``) runs ``folds`` (default: the config's) into ``workdir``. The AUDA
  replication data is converted first, into ``<workdir>/auda_corpus``. ``synthetic_dir``: where the synthetic
  corpus is (or is generated)."""
  kind = source_kind(source)
  if kind == "workdir":
    return Path(source).expanduser()
  workdir = Path(workdir).expanduser()
  config = load_config(Path(configs_dir) / f"{CONFIG_OF[kind]}.py")
  if kind == "synthetic":
    if synthetic_dir:
      config.data.synthetic_dir = str(synthetic_dir)
  else:
    root = Path(source).expanduser()
    if kind == "auda_package":
      converted = workdir / "auda_corpus"
      if not converted.is_dir():
        auda_package.package_to_corpus(root, converted)
      root = converted
    config.data.root = str(root)
  experiment.run_all_folds(config, workdir, folds=list(folds) if folds else None)
  return workdir
