#!/usr/bin/env python3
"""Draw docs/synthetic_example.png: one synthetic subject's posed and spontaneous smile (README figure).

    python docs/make_synthetic_example.py [--out=docs/synthetic_example.png] [--subject=49] [--seed=0]

Frames side by side (times marked) and the observed AU12 / AU6 series (what the OpenFace CSV holds) with the latent
phases shaded. Subject 49 of the default draw is a clear, typical pair, not a random pick.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: files only, no display
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
  sys.path.insert(0, str(ROOT))

from smilejax import constants as C  # noqa: E402
from smilejax import synthetic  # noqa: E402


def write_example_figure(
  path: str | os.PathLike, *, seed: int = 0, subject: int = 49, n_frames_shown: int = 6, size: str = "default"
) -> Path:
  """A posed and a spontaneous synthetic smile of one subject: frames side by side (times marked) and the
  observed AU12 / AU6 series (what the OpenFace CSV holds) with the latent phases shaded."""
  config = synthetic.get_config(size)
  subj = synthetic.draw_subject(seed, subject)
  keys = [(C.LABEL_POSED, subj.posed_ks[0]), (C.LABEL_SPONTANEOUS, subj.spont_ks[0])]
  sims = [synthetic.simulate_video(seed, subj, label, k, config=config) for label, k in keys]
  fig = plt.figure(figsize=(11, 8.2), dpi=110)
  outer = fig.add_gridspec(2, 1, hspace=0.38, top=0.88, bottom=0.06, left=0.06, right=0.98)
  t_max = max(len(s.si_T) for s in sims) / config.fps
  for row, sim in enumerate(sims):
    lat = sim.latents
    g = outer[row].subgridspec(2, n_frames_shown, height_ratios=(1.0, 1.05), hspace=0.12, wspace=0.04)
    T = len(sim.si_T)
    t_on, t_ap = lat.pre_roll, lat.pre_roll + lat.d_on
    t_off, t_end = t_ap + lat.d_ap, t_ap + lat.d_ap + lat.d_off
    shown = np.linspace(0.1, 0.92 * T / config.fps, n_frames_shown)
    shown = (
      np.concatenate(
        [
          [0.0],
          [t_on + 0.5 * lat.d_on],
          [t_ap + 0.5 * lat.d_ap],
          [t_off + 0.5 * lat.d_off],
          [t_end + 0.3 * lat.post_roll],
          [T / config.fps - 0.02],
        ]
      )[:n_frames_shown]
      if n_frames_shown == 6
      else shown
    )
    idx = np.clip(np.round(shown * config.fps).astype(int), 0, T - 1)
    for j, i in enumerate(idx):
      ax = fig.add_subplot(g[0, j])
      ax.imshow(sim.frames_TxHxWxC[i], interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(f"t = {i / config.fps:.2f} s", fontsize=7, pad=2)
    ax = fig.add_subplot(g[1, :])
    t = np.arange(T) / config.fps
    for (a, b), colour, name in (
      ((t_on, t_ap), "#fde0c5", "onset"),
      ((t_ap, t_off), "#e6f2d9", "apex"),
      ((t_off, t_end), "#dbe6f5", "offset"),
    ):
      ax.axvspan(a, b, color=colour, lw=0)
      ax.text(
        (a + b) / 2, 0.02, name, ha="center", va="bottom", fontsize=7, color="0.35", transform=ax.get_xaxis_transform()
      )
    ax.plot(t, sim.au_TxA[:, C.AU_INDEX[12]], color="#c0392b", lw=1.3, label="AU12_r (lip corner puller)")
    ax.plot(t, sim.au_TxA[:, C.AU_INDEX[6]], color="#2471a3", lw=1.3, label="AU06_r (cheek raiser)")
    for i in idx:
      ax.axvline(i / config.fps, color="0.5", lw=0.6, ls=":")
    ax.set_xlim(0, t_max)
    ax.set_ylim(0, max(3.5, float(sim.au_TxA[:, C.AU_INDEX[12]].max()) + 0.3))
    ax.set_ylabel("intensity (0-5)", fontsize=8)
    ax.tick_params(labelsize=7)
    if row == 1:
      ax.set_xlabel("time (s), 50 fps", fontsize=8)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    kind = "POSED" if lat.label == C.LABEL_POSED else "SPONTANEOUS"
    fig.text(
      0.06,
      outer[row].get_position(fig).y1 + 0.03,
      f"{kind}  {lat.id}:  onset {lat.d_on:.2f} s, apex {lat.d_ap:.2f} s, offset {lat.d_off:.2f} s, "
      f"A {lat.amplitude:.2f}, Duchenne {'yes' if lat.duchenne else 'no'} (AU6 lag {lat.lag6:+.2f} s), "
      f"wr {lat.wr:.2f}",
      fontsize=9,
      weight="bold",
    )
  fig.suptitle("smilejax synthetic smile corpus: a test bed with known ground truth, not real faces", fontsize=11)
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path)
  plt.close(fig)
  return path


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=str(ROOT / "docs" / "synthetic_example.png"))
  parser.add_argument("--subject", type=int, default=49)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  print(write_example_figure(args.out, seed=args.seed, subject=args.subject))


if __name__ == "__main__":
  main()
