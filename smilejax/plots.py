"""Figures the notebooks draw (notebooks/*.ipynb hold no logic of their own): the AUDA features of paper section 2.1
as pictures, a synthetic posed/spontaneous pair as frames, and Table 1 beside the paper's.

- :func:`signal_dynamics` / :func:`plot_signal_dynamics`: a smile-intensity series, its sliding-window slopes
  (``auda.trend``) and r-adjusted slopes at each window, the detected onset / apex / offset (``auda.detect_phases``);
- :func:`au_wise_matrix`, :func:`cross_au_matrix` / :func:`plot_feature_heatmaps`: the AU-wise and cross-AU vectors
  of videos side by side, laid out with ``auda.layout``'s names;
- :func:`synthetic_pair` / :func:`plot_pair_frames`: one subject's posed and spontaneous video read from a corpus;
- :func:`table1_comparison` / :func:`plot_table1_comparison`: our per-fold accuracies beside the paper's Table 1,
  in official-list fold numbering with the paper's fold number beside it (``smilejax.paper``).

Every function returns a ``matplotlib.figure.Figure`` that is not registered with pyplot (as ``smilejax.report``):
in a notebook ``display(fig)``, in a script ``fig.savefig(path)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from smilejax import auda, constants, io
from smilejax.auda import layout
from smilejax.errors import InputError
from smilejax.paper import PAPER_TABLE1, list_fold_to_paper_fold, paper_accuracy_by_list_fold
from smilejax.results import Results

PHASE_STYLE: dict[int, tuple[str, str]] = {
  constants.PHASE_ONSET: ("#fde0c5", "onset"),
  constants.PHASE_APEX: ("#d9f0d3", "apex"),
  constants.PHASE_OFFSET: ("#c6dbef", "offset"),
}
_WINDOW_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")
_LABEL_COLORS = {constants.LABEL_POSED: "#d95f02", constants.LABEL_SPONTANEOUS: "#1b9e77"}


# ---------------------------------------------------------------------------------------------------------------------
# A smile-intensity series and its dynamics
# ---------------------------------------------------------------------------------------------------------------------
def signal_dynamics(si_T, *, fps: float = constants.BASE_FPS, options: auda.AudaOptions | None = None) -> pd.DataFrame:
  """One row per frame: time [s], the SI, and for each window w of ``options`` (nominal at 50 fps, scaled to
  ``fps``) the slope ``delta_w``, its correlation ``r_w`` and the r-adjusted slope ``delta_adj_w`` = delta |r|
  (auda.md sections 2-4), and the detected ``phase`` (0 none, 1 onset, 2 apex, 3 offset; section 5)."""
  opts = options or auda.AudaOptions()
  si = np.asarray(si_T, dtype=np.float64)
  if si.ndim != 1 or si.size < 3:
    raise InputError(f"signal_dynamics: expected a 1-D smile-intensity series, got shape {si.shape}")
  out = {"t_s": np.arange(si.size) / float(fps), "si": si}
  for w_nominal, w in zip(opts.windows, layout.scaled_windows(opts, fps)):
    delta, r, delta_adj = (np.asarray(a, np.float64) for a in auda.trend(si, window=w, legacy_edge=opts.legacy_edge))
    out.update({f"delta_{w_nominal}": delta, f"r_{w_nominal}": r, f"delta_adj_{w_nominal}": delta_adj})
  out["phase"] = np.asarray(
    auda.detect_phases(
      si,
      window=opts.phase_window,
      fps=fps,
      legacy_edge=opts.legacy_edge,
      stability=opts.phase_stability,
      min_smile_seconds=opts.min_smile_seconds,
    )
  )
  return pd.DataFrame(out)


def shade_phases(ax, t_s: np.ndarray, phases_T: np.ndarray, *, fps: float) -> None:
  """Shade the onset / apex / offset runs of ``phases_T`` on ``ax`` (behind the curves)."""
  ph = np.asarray(phases_T)
  for label, (color, _) in PHASE_STYLE.items():
    on = np.concatenate([[0], (ph == label).astype(int), [0]])
    edges = np.flatnonzero(np.diff(on))
    for s, e in zip(edges[::2], edges[1::2]):
      a, b = t_s[s], t_s[e - 1] + 1.0 / fps
      ax.axvspan(a, b, color=color, lw=0, zorder=0)


def _phase_handles() -> list:
  return [Patch(color=c, label=n) for c, n in PHASE_STYLE.values()]


def plot_signal_dynamics(df: pd.DataFrame, *, fps: float = constants.BASE_FPS, title: str = "") -> Figure:
  """Three panels over time (:func:`signal_dynamics`' table): the SI, the slopes Delta_w and the r-adjusted slopes
  Delta_w |r_w| for every window, the detected phases shaded in each. Slopes are drawn in units of 10^e per frame,
  e chosen so that the tick labels are plain numbers."""
  windows = [int(c.split("_")[1]) for c in df.columns if c.startswith("delta_") and not c.startswith("delta_adj")]
  t = df["t_s"].to_numpy()
  biggest = max([float(np.max(np.abs(df[f"delta_{w}"]))) for w in windows] + [1e-300])
  exponent = min(0, int(math.floor(math.log10(biggest))))
  unit = f"10$^{{{exponent}}}$ a.u. / frame" if exponent else "a.u. / frame"
  fig = Figure(figsize=(11, 8.2), dpi=110)
  axes = fig.subplots(3, 1, sharex=True)
  for ax in axes:
    shade_phases(ax, t, df["phase"].to_numpy(), fps=fps)
    ax.grid(color="0.9", zorder=0)
    ax.set_axisbelow(True)
  axes[0].plot(t, df["si"], color="k", lw=1.6)
  axes[0].set_ylabel("smile intensity [a.u.]")
  axes[0].legend(
    handles=[Line2D([], [], color="k", lw=1.6, label="smile intensity (SI)"), *_phase_handles()],
    loc="upper right",
    fontsize=8,
    ncol=4,
    framealpha=0.9,
  )
  axes[0].set_title(
    "(a) the signal, with the detected smile phases (auda.detect_phases) shaded", fontsize=10, loc="left"
  )
  for i, w in enumerate(windows):
    c = _WINDOW_COLORS[i % len(_WINDOW_COLORS)]
    scale = 10.0 ** (-exponent)
    axes[1].plot(t, df[f"delta_{w}"] * scale, color=c, lw=1.3, label=f"Δ, window {w} frames ({w / fps * 1000:.0f} ms)")
    axes[2].plot(t, df[f"delta_adj_{w}"] * scale, color=c, lw=1.3, label=f"Δ·|r|, window {w} frames")
  for ax in axes[1:]:
    ax.axhline(0, color="0.4", lw=0.8)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
  axes[1].set_ylabel(f"slope Δ [{unit}]")
  axes[1].set_title("(b) sliding-window regression slope (auda.trend)", fontsize=10, loc="left")
  axes[2].set_ylabel(f"Δ·|r| [{unit}]")
  axes[2].set_title("(c) slope adjusted by the window's correlation coefficient r", fontsize=10, loc="left")
  axes[2].set_xlabel(f"time [s]  ({fps:g} frames per second)")
  if title:
    fig.suptitle(title, fontsize=12)
  fig.tight_layout(rect=(0, 0, 1, 0.97 if title else 1))
  return fig


# ---------------------------------------------------------------------------------------------------------------------
# AU-wise and cross-AU vectors as matrices
# ---------------------------------------------------------------------------------------------------------------------
CROSS_AU_KINDS: tuple[str, ...] = ("min δΔ", "max δΔ", "Δt max increase", "Δt max decrease")
_CROSS_AU_UNITS = {
  "min δΔ": "min |Δi − Δj| [AU intensity / frame]",
  "max δΔ": "max |Δi − Δj| [AU intensity / frame]",
  "Δt max increase": "|t of max Δi − t of max Δj| [s]",
  "Δt max decrease": "|t of min Δi − t of min Δj| [s]",
}


def au_wise_matrix(vector, segments: Sequence[str] = layout.DEFAULT_SEGMENTS) -> pd.DataFrame:
  """An AU-wise vector (len(segments) x 119; auda.md sections 8, 10) as a table: one row per (segment, statistic),
  one column per AU, labelled from ``layout.au_wise_feature_names``."""
  v = np.asarray(vector, dtype=np.float64).ravel()
  names = layout.au_wise_feature_names(segments)
  if v.size != len(names):
    raise InputError(f"au_wise_matrix: a vector of {len(names)} values for segments {segments}, got {v.size}")
  rows: dict[str, dict[str, float]] = {}
  for name, x in zip(names, v):
    segment, rest = name.split(": ", 1)
    au, stat = rest.split(" ", 1)
    rows.setdefault(f"{segment}: {stat}", {})[au] = float(x)
  return pd.DataFrame.from_dict(rows, orient="index")[list(constants.AU_NAMES)]


def cross_au_matrix(
  vector,
  *,
  segment: str = "whole_smile",
  kind: str = "max δΔ",
  window: int = 27,
  segments: Sequence[str] = layout.DEFAULT_SEGMENTS,
) -> pd.DataFrame:
  """One block of a cross-AU vector (len(segments) x 1088; auda.md sections 9, 10) as a symmetric 17 x 17 table of
  AU pairs (NaN on the diagonal): the statistic ``kind`` (one of ``CROSS_AU_KINDS``) at nominal ``window`` in
  ``segment``."""
  v = np.asarray(vector, dtype=np.float64).ravel()
  names = layout.cross_au_feature_names(segments)
  if v.size != len(names):
    raise InputError(f"cross_au_matrix: a vector of {len(names)} values for segments {segments}, got {v.size}")
  if kind not in CROSS_AU_KINDS or segment not in segments or window not in layout.AudaOptions().windows:
    raise InputError(f"cross_au_matrix: no block {segment!r} / {kind!r} / window {window} in the layout")
  m = np.full((constants.NUM_AUS, constants.NUM_AUS), np.nan)
  wanted = f"{kind}{window}".replace(" ", "")  # names: "<segment>: AUi-AUj <statistic><window>", spacing varies
  for index, (name, x) in enumerate(zip(names, v)):
    seg, _, stat = name.split(" ", 2)
    if seg == f"{segment}:" and stat.replace(" ", "") == wanted:
      i, j = layout.cross_au_feature_pair(index, n_segments=len(segments))
      m[i, j] = m[j, i] = x
  return pd.DataFrame(m, index=list(constants.AU_NAMES), columns=list(constants.AU_NAMES))


def plot_feature_heatmaps(
  features: Mapping[str, tuple[np.ndarray, np.ndarray]],
  *,
  segment: str = "whole_smile",
  kind: str = "max δΔ",
  window: int = 27,
  title: str = "",
) -> Figure:
  """Heatmaps of the AU-wise and cross-AU vectors of a few videos side by side (``features``: name -> (AU-wise
  vector, cross-AU vector)). Top: each AU-wise vector as (segment: statistic) x AU, every row divided by its largest
  |value| over the videos shown (the statistics differ in scale); bottom: one cross-AU block (``kind`` at
  ``window`` in ``segment``) as an AU x AU matrix, on one colour scale in its own units."""
  names = list(features)
  aw = {n: au_wise_matrix(features[n][0]) for n in names}
  cx = {n: cross_au_matrix(features[n][1], segment=segment, kind=kind, window=window) for n in names}
  scale = np.max([np.abs(aw[n].to_numpy()) for n in names], axis=0).max(axis=1, keepdims=True)
  scale[scale == 0] = 1.0
  c_max = float(np.nanmax([np.nanmax(cx[n].to_numpy()) for n in names])) or 1.0
  n = len(names)
  fig = Figure(figsize=(6.2 * n + 1.2, 15.5), dpi=100)
  grid = fig.add_gridspec(2, n + 1, height_ratios=(1.55, 1.0), width_ratios=[1.0] * n + [0.05], hspace=0.22)
  rows = list(aw[names[0]].index)
  for col, name in enumerate(names):
    ax = fig.add_subplot(grid[0, col])
    im = ax.imshow(aw[name].to_numpy() / scale, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(constants.NUM_AUS))
    ax.set_xticklabels(constants.AU_NAMES, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows if col == 0 else [], fontsize=8)
    for k in range(1, len(rows) // 7):
      ax.axhline(7 * k - 0.5, color="k", lw=1.0)
    ax.set_title(f"{name}\nAU-wise vector ({aw[name].size} features)", fontsize=10)
    ax.set_xlabel("action unit")
  cb = fig.colorbar(im, cax=fig.add_subplot(grid[0, n]))
  cb.set_label("value / largest |value| of its row (both videos)", fontsize=9)
  for col, name in enumerate(names):
    ax = fig.add_subplot(grid[1, col])
    im2 = ax.imshow(cx[name].to_numpy(), cmap="viridis", vmin=0, vmax=c_max, interpolation="nearest")
    ax.set_xticks(range(constants.NUM_AUS))
    ax.set_xticklabels(constants.AU_NAMES, rotation=90, fontsize=8)
    ax.set_yticks(range(constants.NUM_AUS))
    ax.set_yticklabels(constants.AU_NAMES if col == 0 else [], fontsize=8)
    ax.set_title(f"{name}\ncross-AU: {kind}{window}, {segment} (136 of 4352)", fontsize=10)
    ax.set_xlabel("action unit j")
    if col == 0:
      ax.set_ylabel("action unit i")
  cb2 = fig.colorbar(im2, cax=fig.add_subplot(grid[1, n]))
  cb2.set_label(_CROSS_AU_UNITS[kind], fontsize=9)
  if title:
    fig.suptitle(title, fontsize=12)
  fig.subplots_adjust(left=0.14, right=0.93, top=0.94 if title else 0.97, bottom=0.05, wspace=0.08)
  return fig


# ---------------------------------------------------------------------------------------------------------------------
# A synthetic posed / spontaneous pair
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CorpusVideo:
  """One video of a corpus folder, read with the project's readers."""

  id: str
  label: int
  frames_TxHxWxC: np.ndarray | None  # uint8, None when the corpus has no videos/
  fps: float
  au_TxA: np.ndarray
  si_T: np.ndarray


def read_corpus_video(root: str | os.PathLike, video_id: str, *, frames: bool = True) -> CorpusVideo:
  """Read ``video_id`` of a corpus folder (constants' layout: openface/, smile_intensities/, videos/)."""
  root = Path(root)
  _, label = io.parse_video_id(video_id)
  series = io.read_openface_csv(root / constants.OPENFACE_DIR / f"{video_id}.csv")
  si = io.read_smile_intensity(root / constants.SMILE_INTENSITY_DIR / f"{video_id}{constants.SMILE_INTENSITY_SUFFIX}")
  mp4 = root / constants.VIDEO_DIR / f"{video_id}.mp4"
  pixels = io.read_video(mp4).frames_TxHxWxC if frames and mp4.is_file() else None
  return CorpusVideo(video_id, int(label), pixels, float(series.fps), series.au_TxA, si)


def synthetic_pair(root: str | os.PathLike, subject: str | None = None, *, frames: bool = True) -> list[CorpusVideo]:
  """The first posed and the first spontaneous video of ``subject`` (default: the first subject, by id, that has
  both) in a corpus folder: [posed, spontaneous]."""
  root = Path(root)
  ids = sorted(p.stem for p in (root / constants.OPENFACE_DIR).glob("*.csv"))
  by_subject: dict[str, dict[int, str]] = {}
  for vid in ids:
    subj, label = io.parse_video_id(vid)
    by_subject.setdefault(subj, {}).setdefault(int(label), vid)
  pairs = {s: v for s, v in by_subject.items() if len(v) == 2 and (subject is None or s == subject)}
  if not pairs:
    raise InputError(
      f"{root / constants.OPENFACE_DIR}: no subject {subject or ''} with a posed and a spontaneous video"
    )
  chosen = pairs[min(pairs)]
  return [
    read_corpus_video(root, chosen[lab], frames=frames) for lab in (constants.LABEL_POSED, constants.LABEL_SPONTANEOUS)
  ]


def plot_pair_frames(videos: Sequence[CorpusVideo], *, n_frames: int = 7, title: str = "") -> Figure:
  """One row of ``n_frames`` evenly spaced frames per video (time above each), and below them every video's smile
  intensity over time with the shown frames marked."""
  n = len(videos)
  fig = Figure(figsize=(1.55 * n_frames + 0.6, 2.0 * n + 3.0), dpi=110)
  grid = fig.add_gridspec(n + 1, n_frames, height_ratios=[1.0] * n + [1.45], hspace=0.35, wspace=0.05)
  ax_si = fig.add_subplot(grid[n, :])
  for row, v in enumerate(videos):
    if v.frames_TxHxWxC is None:
      raise InputError(f"{v.id}: no video frames to show (the corpus has no videos/)")
    n_t = v.frames_TxHxWxC.shape[0]
    shown = np.linspace(0, n_t - 1, n_frames).round().astype(int)
    color = _LABEL_COLORS[v.label]
    for j, i in enumerate(shown):
      ax = fig.add_subplot(grid[row, j])
      ax.imshow(v.frames_TxHxWxC[i], interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2)
      ax.set_title(f"t = {i / v.fps:.2f} s", fontsize=8, pad=2)
      if j == 0:
        ax.set_ylabel(f"{constants.LABEL_NAMES[v.label]}\n{v.id}", fontsize=8, color=color)
    t = np.arange(len(v.si_T)) / v.fps
    ax_si.plot(t, v.si_T, color=color, lw=1.6, label=f"{v.id} ({constants.LABEL_NAMES[v.label]})")
    ax_si.plot(t[np.minimum(shown, len(t) - 1)], v.si_T[np.minimum(shown, len(t) - 1)], "o", color=color, ms=4)
  ax_si.set_xlabel("time [s]")
  ax_si.set_ylabel("smile intensity [a.u.]")
  ax_si.grid(color="0.9")
  ax_si.legend(fontsize=8, loc="lower center", title="dots: the frames shown", title_fontsize=8)
  fig.suptitle(title or "A posed and a spontaneous smile of one synthetic subject", fontsize=11)
  fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.08)
  return fig


# ---------------------------------------------------------------------------------------------------------------------
# Table 1: ours beside the paper's
# ---------------------------------------------------------------------------------------------------------------------
def table1_comparison(results: Results) -> pd.DataFrame:
  """Accuracy [%] per fold, ours and the paper's, one row per (method, source): columns are the official list folds
  1..10 named "k (pN)" with the paper's fold number N (``smilejax.paper``), then mean, std and ms per video."""
  folds = range(1, constants.NUM_FOLDS + 1)
  columns = [f"{k} (p{list_fold_to_paper_fold(k)})" for k in folds]
  rows = []
  for m in results.methods:
    mean, std, _ = results.summary(m)
    ms = results.ms_per_video.loc[m].to_numpy(dtype=float)
    ours = [float(results.accuracy_pct.loc[m, k]) if k in results.accuracy_pct.columns else math.nan for k in folds]
    rows.append(
      {
        "method": results.method_names.get(m, m),
        "source": f"ours ({results.dataset})",
        **dict(zip(columns, ours)),
        "mean": mean,
        "std": std,
        "ms_per_video": float(np.nanmean(ms)) if np.isfinite(ms).any() else math.nan,
      }
    )
    if m in PAPER_TABLE1:
      paper, row = paper_accuracy_by_list_fold(m), PAPER_TABLE1[m]
      rows.append(
        {
          "method": results.method_names.get(m, m),
          "source": "paper (UvA-NEMO)",
          **{c: paper[k] for c, k in zip(columns, folds)},
          "mean": row.mean,
          "std": row.std,
          "ms_per_video": row.ms,
        }
      )
  return pd.DataFrame(rows).set_index(["method", "source"])


def plot_table1_comparison(results: Results, *, title: str = "") -> Figure:
  """One panel per method: our accuracy per fold (bars) beside the paper's Table 1 (grey bars, moved to the
  official-list numbering; x labels "k / pN"), each with its mean as a line; folds we have not run carry an "x"."""
  table = table1_comparison(results)
  folds = np.arange(1, constants.NUM_FOLDS + 1)
  ncols = 3
  nrows = max(1, math.ceil(len(results.methods) / ncols))
  fig = Figure(figsize=(5.4 * ncols, 3.7 * nrows + 1.2), dpi=100)
  axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
  width = 0.4
  ours_color = "#1f77b4"
  for i, m in enumerate(results.methods):
    ax = axes[i // ncols][i % ncols]
    name = results.method_names.get(m, m)
    ours = table.loc[(name, f"ours ({results.dataset})")]
    acc = np.array([ours[c] for c in table.columns[: constants.NUM_FOLDS]], dtype=float)
    ok = np.isfinite(acc)
    ax.bar(folds[ok] - width / 2, acc[ok], width=width, color=ours_color, zorder=2)
    for k in folds[~ok]:
      ax.plot([k - width / 2], [3], marker="x", color="#d62728", ms=6, mew=1.5, zorder=3)
    label = "ours: " + (f"{ours['mean']:.1f}" if np.isfinite(ours["mean"]) else "—")
    if np.isfinite(ours["std"]):
      label += f" ± {ours['std']:.1f}"
    label += f" ({int(ok.sum())} fold{'s' if ok.sum() != 1 else ''})"
    if ok.any():
      ax.axhline(ours["mean"], color=ours_color, ls=":", lw=1.5, zorder=3)
    if m in PAPER_TABLE1:
      paper = table.loc[(name, "paper (UvA-NEMO)")]
      pv = np.array([paper[c] for c in table.columns[: constants.NUM_FOLDS]], dtype=float)
      ax.bar(folds + width / 2, pv, width=width, color="#c7c7c7", edgecolor="k", lw=0.5, zorder=2)
      ax.axhline(paper["mean"], color="k", ls="--", lw=1.0, zorder=3)
      label += f"\npaper: {paper['mean']:.1f} ± {paper['std']:.1f}"
    ax.set_title(f"{name}\n{label}", fontsize=9)
    ax.set_xticks(folds)
    ax.set_xticklabels([f"{k}\np{list_fold_to_paper_fold(int(k))}" for k in folds], fontsize=7)
    ax.set_ylim(0, 105)
    ax.grid(axis="y", color="0.9", zorder=0)
    if i % ncols == 0:
      ax.set_ylabel("test accuracy [%]")
    if i // ncols == nrows - 1:
      ax.set_xlabel("fold: official list k / paper fold pN")
  for j in range(len(results.methods), nrows * ncols):
    axes[j // ncols][j % ncols].axis("off")
  handles = [
    Patch(color=ours_color, label=f"ours ({results.dataset}), per fold"),
    Line2D([], [], color=ours_color, ls=":", label="ours, mean"),
    Patch(facecolor="#c7c7c7", edgecolor="k", label="paper Table 1 (UvA-NEMO), per fold"),
    Line2D([], [], color="k", ls="--", label="paper, mean"),
    Line2D([], [], color="#d62728", marker="x", ls="", mew=1.5, label="fold not run (ours)"),
  ]
  fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
  head = title or f"Table 1 per fold: ours ({results.dataset}) beside the paper's"
  if results.dataset != "uvanemo":
    head += f"\n(ours on {results.dataset} data, the paper's on UvA-NEMO: compare the layout, not the numbers)"
  fig.suptitle(head, fontsize=11)
  fig.tight_layout(rect=(0, 0.05, 1, 0.93))
  return fig
