"""The paper's experiment on UvA-NEMO (1240 videos, 400 subjects, 50 fps; realsmilenet.md §6), from a folder in the
project's corpus layout (videos/, openface/, smile_intensities/, optional folds/; see smilejax.io.nemo):

    bin/run_all_folds --config=configs/uvanemo.py --config.data.root=/data/uva-nemo   # workdir ./workdirs/uvanemo

An empty data.root is an error. Expected runtime: the first load decodes every 1080p video once (about a second
each, then cached). Training costs about 3.4x the synthetic default corpus per epoch (1240 vs 367 videos, similar
clip lengths), dominated by RealSmileNet: see configs/default.py for the measured per-epoch costs on a 2-core CPU;
with the paper's 10 RealSmileNet epochs a 2-core CPU needs many hours -- use a GPU machine.
"""

import pathlib
import runpy

# The shared settings live in configs/__init__.py; config_flags loads this file by path, so load that one by path too.
_PAPER = pathlib.Path(__file__).resolve().with_name("__init__.py")


def get_config():
  c = runpy.run_path(str(_PAPER))["paper_config"]()
  c.name = "uvanemo"
  c.data.root = ""  # required: --config.data.root=<UvA-NEMO folder>
  c.data.require_root = True
  c.data.dataset = "uvanemo"
  return c
