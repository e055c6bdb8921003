"""The paper's AUDA classifiers and their fusion on the AUDA replication data (no videos, so no RealSmileNet):

    bin/import_auda_package --package=/data/auda_replication --out=/data/auda_corpus
    bin/run_all_folds --config=configs/auda_package.py --config.data.root=/data/auda_corpus

Features are computed by smilejax from the package's AU and smile-intensity series (auda.md), exactly as for a
UvA-NEMO folder; the rows of Table 1 that need video (RealSmileNet, fusion of all features) are not run.
"""

import pathlib
import runpy

# The shared settings live in configs/__init__.py; config_flags loads this file by path, so load that one by path too.
_PAPER = pathlib.Path(__file__).resolve().with_name("__init__.py")


def get_config():
  c = runpy.run_path(str(_PAPER))["paper_config"]()
  c.name = "auda_package"
  c.data.root = ""  # required: --config.data.root=<folder written by bin/import_auda_package>
  c.data.require_root = True
  c.data.dataset = "uvanemo"  # the same videos and folds as UvA-NEMO: the report draws the paper's numbers
  c.data.with_video = False
  c.methods = ("framewise", "auwise", "crossau", "fusion_auda")
  return c
