"""The paper's AUDA classifiers and their fusion on the AUDA replication data (no videos, so no RealSmileNet):

    bin/import_auda_package --package=/data/auda_replication --out=/data/auda_corpus
    bin/run_all_folds --config=configs/auda_package.py --config.data.root=/data/auda_corpus

Features are computed by smilejax from the package's AU and smile-intensity series (auda.md), exactly as for a
UvA-NEMO folder; the rows of Table 1 that need video (RealSmileNet, fusion of all features) are not run.
"""

import importlib.util
import pathlib


def _paper_config():
  path = pathlib.Path(__file__).resolve().with_name("__init__.py")
  spec = importlib.util.spec_from_file_location("_smilejax_configs", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.paper_config()


def get_config():
  c = _paper_config()
  c.name = "auda_package"
  c.data.root = ""                 # required: --config.data.root=<folder written by bin/import_auda_package>
  c.data.require_root = True
  c.data.dataset = "uvanemo"       # the same videos and folds as UvA-NEMO: the report draws the paper's numbers
  c.data.with_video = False
  c.methods = ("framewise", "auwise", "crossau", "fusion_auda")
  return c
