"""Table 1 of the paper, redrawn from an experiment workdir's files alone.

The report reads only what `smilejax.experiment` leaves in a workdir (common contract):

    <workdir>/config.json                 the run config (used for the expected fold list, dataset, seed)
    <workdir>/fold_XX/fold_result.json    written last: its presence means fold XX finished
    <workdir>/fold_XX/predictions.csv     id, subject, label, fold, one probability column per method
    <workdir>/fold_XX/FAILED              one line: why the fold failed

so a notebook can redraw the table and the figures without retraining. It writes

    results.md            Table 1 layout (rows = the six methods; Time [ms] per video; accuracy per fold in %;
                          Average ± sample std, ddof = 1, as the paper's ±; realsmilenet.md §6), a header naming
                          backend, dataset and seed, per-fold no_smile_detected counts, and the paper's Table 1
                          beneath for reference (auda.md §13)
    results.csv           the same numbers, unrounded, machine-readable (one row per method)
    folds.csv             per-fold status and counts (done / failed / missing, n_test, no_smile_detected, ...)
    results.png           per-fold accuracy per method (paper's per-fold numbers beside ours only on UvA-NEMO)
    predictions_all.csv   the finished folds' predictions, concatenated
    confusion.csv/.png    2x2 confusion matrix per method over all finished folds (p > 0.5 = spontaneous)

Missing folds are never averaged away silently: their cells read "—" and the Average says how many folds it covers,
e.g. "78.1 ± 3.0 (9/10 folds)".

Fold numbering: our fold k is the official list k; the paper's numbering and its Table 1 are ``smilejax.paper``'s.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from absl import logging
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from smilejax import constants, fileio
from smilejax import methods as methods_lib
from smilejax.paper import (
  FOLD_MAPPING_NOTE,
  PAPER_TABLE1,
  list_fold_to_paper_fold,
  paper_accuracy_by_list_fold,
)
from smilejax.results import Results, confusion_matrices, load_predictions, load_results

# ---------------------------------------------------------------------------------------------------------------------
# Writing the report
# ---------------------------------------------------------------------------------------------------------------------
_DASH = "—"


def _fmt_pct(x: float) -> str:
  return _DASH if not math.isfinite(x) else f"{x:.1f}"


def _fmt_ms(x: float) -> str:
  if not math.isfinite(x):
    return _DASH
  return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def format_average(mean: float, std: float, n: int, n_expected: int) -> str:
  """ "78.1 ± 3.0", with "(n/N folds)" appended whenever fewer folds than expected entered the mean."""
  if n == 0:
    return f"{_DASH} (0/{n_expected} folds)"
  s = f"{mean:.1f}" if not math.isfinite(std) else f"{mean:.1f} ± {std:.1f}"
  if n < n_expected:
    s += f" ({n}/{n_expected} folds)"
  return s


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


def results_table_markdown(results: Results) -> str:
  """Table 1 layout for our numbers: Method | Time [ms] | fold columns | Average."""
  n_exp = len(results.folds)
  uvanemo = results.dataset == "uvanemo"
  header = (
    ["Method", "Time [ms]"]
    + [f"{k} (p{list_fold_to_paper_fold(k)})" if uvanemo and 1 <= k <= 10 else str(k) for k in results.folds]
    + ["Average"]
  )
  rows = []
  for m in results.methods:
    accs = results.accuracy_pct.loc[m]
    mean, std, n = results.summary(m)
    ms_mean = (
      float(np.nanmean(results.ms_per_video.loc[m]))
      if np.isfinite(results.ms_per_video.loc[m].to_numpy(dtype=float)).any()
      else math.nan
    )
    rows.append(
      [results.method_names.get(m, m), _fmt_ms(ms_mean)]
      + [_fmt_pct(float(accs[k])) for k in results.folds]
      + [format_average(mean, std, n, n_exp)]
    )
  return _md_table(header, rows, ["l", "r"] + ["r"] * n_exp + ["r"])


def paper_table_markdown(*, order: str = "paper") -> str:
  """The paper's Table 1. order="paper": columns = paper folds 1..10 as published; order="list": columns =
  official list folds 1..10 (paper numbers moved by the fold mapping), for per-fold comparison on UvA-NEMO."""
  if order not in ("paper", "list"):
    raise ValueError(f"order must be 'paper' or 'list', got {order!r}")
  names = methods_lib.METHOD_NAMES
  ks = range(1, constants.NUM_FOLDS + 1)
  if order == "paper":
    header = ["Method", "Time [ms]"] + [f"p{k}" for k in ks] + ["Average"]
  else:
    header = ["Method", "Time [ms]"] + [f"{k} (p{list_fold_to_paper_fold(k)})" for k in ks] + ["Average"]
  rows = []
  for m, row in PAPER_TABLE1.items():
    if order == "paper":
      vals = row.folds
    else:
      by_list = paper_accuracy_by_list_fold(m)
      vals = tuple(by_list[k] for k in ks)
    rows.append([names.get(m, m), f"{row.ms:.1f}"] + [f"{v:.1f}" for v in vals] + [f"{row.mean:.1f} ± {row.std:.1f}"])
  return _md_table(header, rows, ["l", "r"] + ["r"] * constants.NUM_FOLDS + ["r"])


def _backend_line(results: Results) -> str:
  if not results.backends:
    return "unknown (no finished fold)"
  if len(results.backends) == 1:
    return results.backends[0]
  return "; ".join(results.backends) + " (MIXED: timings come from different machines)"


def _fold_list(ks: Sequence[int]) -> str:
  return ", ".join(str(k) for k in ks) if ks else "none"


def _au_source_part(results: Results) -> str:
  """The header's "AU source: mediapipe · " when the models were trained on another AU source than OpenFace (config.json
  data.au_source; absent = OpenFace), else nothing (the header of an OpenFace run stays as it was)."""
  data_cfg = results.config.get("data") if isinstance(results.config, dict) else None
  source = str(data_cfg.get("au_source", "openface")) if isinstance(data_cfg, dict) else "openface"
  return "" if source == "openface" else f"AU source: {source} (proxies, not OpenFace's AUs) · "


def report_markdown(results: Results, predictions: pd.DataFrame | None = None) -> str:
  """The full results.md text."""
  n_exp = len(results.folds)
  seed = "unknown" if results.seed is None else str(results.seed)
  lines = [
    f"# Results: dataset {results.dataset}",
    "",
    f"Backend: {_backend_line(results)} · dataset: {results.dataset} · seed: {seed} · "
    + _au_source_part(results)
    + f"folds finished: {len(results.finished)}/{n_exp}"
    + (f" (not finished: {_fold_list(results.missing)})" if results.missing else ""),
    "",
  ]
  full = tuple(range(1, constants.NUM_FOLDS + 1))
  if results.folds != full and set(results.folds) <= set(full):
    lines += [
      f"This run covers folds {_fold_list(results.folds)} only, not all {constants.NUM_FOLDS}: its "
      "averages are not comparable with a 10-fold mean.",
      "",
    ]
  if results.dataset == "synthetic":
    lines += [
      "**These are synthetic test-bed numbers, not evidence about real smiles.** The corpus is "
      "generated by smilejax.synthetic (spec/synthetic.md); the accuracies say whether the pipeline "
      "learns what the generator put in, nothing about human smiles.",
      "",
    ]
  lines += [
    "Accuracy in % on each test fold; Time = milliseconds per test video (mean over finished folds, "
    "backend above); Average = mean ± sample std (ddof = 1) over the finished folds.",
    "",
  ]
  lines.append(results_table_markdown(results))
  lines.append("")
  notes = [
    "Fold k = the official UvA-NEMO list k (`P_fold_all_k.txt` ∪ `S_fold_all_k.txt`) or, for the "
    "synthetic corpus, its own `folds/` list k."
  ]
  if results.dataset == "uvanemo":
    notes.append(
      f'"(pN)" = the paper\'s fold number for that list: {FOLD_MAPPING_NOTE}; per-fold comparisons '
      "with the paper below use this mapping."
    )
  if results.missing:
    notes.append(f"{_DASH} = fold not finished; the Average covers only the finished folds and says how many.")
  lines += [f"- {n}" for n in notes]
  lines.append("")

  # Per-fold bookkeeping: no_smile_detected and test-set sizes.
  nsd = results.no_smile_detected()
  header = ["", *[str(k) for k in results.folds], "total"]
  nsd_vals = [v for v in nsd.values() if v is not None]
  n_test = {k: results.fold_results[k].get("n_test") for k in results.finished}
  rows = [
    ["no_smile_detected (test videos)"]
    + [_DASH if nsd[k] is None else str(nsd[k]) for k in results.folds]
    + [str(sum(nsd_vals)) if nsd_vals else _DASH],
    ["n_test"]
    + [_DASH if n_test.get(k) is None else str(n_test[k]) for k in results.folds]
    + [str(sum(v for v in n_test.values() if v is not None)) if n_test else _DASH],
  ]
  lines += ["## Per fold", "", _md_table(header, rows, ["l"] + ["r"] * (len(results.folds) + 1)), ""]
  if results.failed:
    lines += ["Failed folds:", ""] + [f"- fold {k}: {msg}" for k, msg in sorted(results.failed.items())] + [""]
  if results.skipped:  # data.on_bad_video = "skip": in no training or test set of any fold
    lines += [f"Videos left out as bad input ({len(results.skipped)}, data.on_bad_video = skip):", ""]
    lines += [f"- {vid}: {reason}" for vid, reason in results.skipped.items()] + [""]

  if predictions is not None and len(predictions):
    mism = _accuracy_mismatches(results, predictions)
    if mism:
      lines += [
        "Warning: accuracy recomputed from predictions.csv (p > 0.5) differs from fold_result.json "
        "for: " + ", ".join(f"fold {k} {m} ({a:.2f} vs {b:.2f})" for k, m, a, b in mism),
        "",
      ]

  lines += [
    "## Paper, Table 1 (reference; UvA-NEMO, times on an RTX 2080)",
    "",
    "As published (paper fold numbering p1..p10):",
    "",
    paper_table_markdown(order="paper"),
    "",
  ]
  if results.dataset == "uvanemo":
    lines += [
      f"The same numbers in official-list order ({FOLD_MAPPING_NOTE}), aligned with our columns:",
      "",
      paper_table_markdown(order="list"),
      "",
    ]
  else:
    lines += [f"Per-fold paper numbers are comparable only on UvA-NEMO, where {FOLD_MAPPING_NOTE}.", ""]
  return "\n".join(lines)


def _accuracy_mismatches(
  results: Results, predictions: pd.DataFrame, tol_pct: float = 0.05
) -> list[tuple[int, str, float, float]]:
  """(fold, method, from predictions %, from fold_result %) where they differ by more than tol_pct."""
  out = []
  for k in results.finished:
    sub = predictions[predictions["fold"] == k]
    for m in results.methods:
      want = float(results.accuracy_pct.loc[m, k])
      if m not in sub.columns or not math.isfinite(want):
        continue
      p = sub[m].to_numpy(dtype=float)
      ok = np.isfinite(p)
      if not ok.any():
        continue
      got = 100.0 * float(np.mean((p[ok] > 0.5).astype(int) == sub["label"].to_numpy()[ok].astype(int)))
      if abs(got - want) > tol_pct:
        out.append((k, m, got, want))
  return out


def results_dataframe(results: Results) -> pd.DataFrame:
  """results.csv content: one row per method, unrounded (accuracy in %, ms per video), NaN = missing."""
  rows = []
  for m in results.methods:
    mean, std, n = results.summary(m)
    msv = results.ms_per_video.loc[m].to_numpy(dtype=float)
    row: dict[str, Any] = {
      "method": m,
      "name": results.method_names.get(m, m),
      "ms_per_video": float(np.nanmean(msv)) if np.isfinite(msv).any() else math.nan,
    }
    for k in results.folds:
      row[f"fold_{k}"] = float(results.accuracy_pct.loc[m, k])
    row.update(
      {
        "mean": mean,
        "std": std,
        "n_folds": n,
        "n_expected_folds": len(results.folds),
        "dataset": results.dataset,
        "seed": results.seed,
        "backend": _backend_line(results),
      }
    )
    rows.append(row)
  return pd.DataFrame(rows)


def folds_dataframe(results: Results) -> pd.DataFrame:
  """folds.csv content: per expected fold its status and counts from fold_result.json."""
  rows = []
  for k in results.folds:
    r = results.fold_results.get(k, {})
    status = "done" if k in results.fold_results else ("failed" if k in results.failed else "missing")
    rows.append(
      {
        "fold": k,
        "status": status,
        **{key: r.get(key) for key in ("n_test", "n_train", "n_val", "no_smile_detected", "wall_s", "backend", "seed")},
        "failed_reason": results.failed.get(k, ""),
        **({"n_skipped_test": r.get("n_skipped_test")} if results.skipped else {}),
      }
    )
  return pd.DataFrame(rows)


def confusion_dataframe(conf: Mapping[str, np.ndarray], names: Mapping[str, str]) -> pd.DataFrame:
  """confusion.csv content: per method two rows (true posed / true spontaneous), predicted counts as columns."""
  rows = []
  for m, c in conf.items():
    for t in (constants.LABEL_POSED, constants.LABEL_SPONTANEOUS):
      rows.append(
        {
          "method": m,
          "name": names.get(m, m),
          "true": constants.LABEL_NAMES[t],
          "pred_posed": int(c[t, constants.LABEL_POSED]),
          "pred_spontaneous": int(c[t, constants.LABEL_SPONTANEOUS]),
        }
      )
  return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg)
# ---------------------------------------------------------------------------------------------------------------------
def _figure(**kwargs):
  """A matplotlib Figure that is not registered with pyplot: no display needed, no global backend switch, and
  savefig renders with Agg."""
  return Figure(**kwargs)


def plot_results(results: Results):
  """Per-fold accuracy, one panel per method (2 x 3). Bars = ours, dotted line = our mean; on UvA-NEMO the paper's
  per-fold numbers (mapped to list folds) are drawn beside the bars as black diamonds, its mean as a dashed line.
  Missing folds carry an "×" at the axis. Returns a matplotlib Figure (not registered with pyplot; in a notebook
  display it with IPython.display.display(fig) or save it with fig.savefig)."""
  uvanemo = results.dataset == "uvanemo"
  n_m = len(results.methods)
  ncols = 3
  nrows = int(math.ceil(n_m / ncols))
  fig = _figure(figsize=(5.2 * ncols, 3.8 * nrows + 0.9))
  axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
  folds = list(results.folds)
  x = np.arange(len(folds))
  finite_all = results.accuracy_pct.to_numpy(dtype=float)
  finite_all = finite_all[np.isfinite(finite_all)]
  lo_candidates = [finite_all.min()] if finite_all.size else [50.0]
  if uvanemo:
    lo_candidates.append(min(min(r.folds) for r in PAPER_TABLE1.values()))
  y_lo = max(0.0, math.floor((min(lo_candidates) - 8) / 10) * 10)
  y_hi = 101.0
  color_ours = "#1f77b4"
  for i, m in enumerate(results.methods):
    ax = axes[i // ncols][i % ncols]
    accs = results.accuracy_pct.loc[m].to_numpy(dtype=float)
    ok = np.isfinite(accs)
    width = 0.38 if uvanemo else 0.7
    xo = x - width / 2 if uvanemo else x
    ax.bar(xo[ok], accs[ok] - y_lo, bottom=y_lo, width=width, color=color_ours, zorder=2)
    for xi in x[~ok]:
      ax.plot([xi], [y_lo + 1.5], marker="x", color="#d62728", markersize=8, mew=2, zorder=3, clip_on=False)
    mean, std, n = results.summary(m)
    label = "ours: " + format_average(mean, std, n, len(folds))
    if n:
      ax.axhline(mean, color=color_ours, ls=":", lw=1.5, zorder=1)
    if uvanemo:
      paper = paper_accuracy_by_list_fold(m)
      pv = np.array([paper.get(k, math.nan) for k in folds], dtype=float)
      ax.bar(x + width / 2, pv - y_lo, bottom=y_lo, width=width, color="#bbbbbb", edgecolor="k", lw=0.5, zorder=2)
      ax.axhline(PAPER_TABLE1[m].mean, color="k", ls="--", lw=1.0, zorder=1)
      label += f"  ·  paper: {PAPER_TABLE1[m].mean:.1f} ± {PAPER_TABLE1[m].std:.1f}"
    ax.set_title(f"{results.method_names.get(m, m)}\n{label}", fontsize=10)
    ax.set_xticks(x)
    ax.set_xticklabels(
      [f"{k}\np{list_fold_to_paper_fold(k)}" if uvanemo and 1 <= k <= 10 else str(k) for k in folds], fontsize=8
    )
    ax.set_ylim(y_lo, y_hi)
    ax.grid(axis="y", color="0.9", zorder=0)
    ax.set_axisbelow(True)
    if i % ncols == 0:
      ax.set_ylabel("accuracy [%]")
    if i // ncols == nrows - 1:
      ax.set_xlabel("fold (official list; pN = paper fold)" if uvanemo else "fold")
  for j in range(n_m, nrows * ncols):
    axes[j // ncols][j % ncols].axis("off")

  handles = [
    Patch(color=color_ours, label="ours (per fold)"),
    Line2D([], [], color=color_ours, ls=":", label="ours (mean)"),
  ]
  if uvanemo:
    handles += [
      Patch(facecolor="#bbbbbb", edgecolor="k", label="paper Table 1 (per fold, mapped to list)"),
      Line2D([], [], color="k", ls="--", label="paper (mean)"),
    ]
  if results.missing:
    handles.append(Line2D([], [], color="#d62728", marker="x", ls="", mew=2, label="fold not finished"))
  title = f"Per-fold test accuracy — dataset: {results.dataset}, backend: {_backend_line(results)}"
  if results.dataset == "synthetic":
    title += "\n(synthetic test-bed numbers, not evidence about real smiles)"
  fig.suptitle(title, fontsize=12)
  fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
  fig.tight_layout(rect=(0, 0.05, 1, 0.95))
  return fig


def plot_confusion(conf: Mapping[str, np.ndarray], names: Mapping[str, str], *, subtitle: str = ""):
  """One 2x2 heatmap per method: counts and row percentages (true class -> predicted). Returns the Figure."""
  methods = list(conf)
  ncols = 3
  nrows = max(1, int(math.ceil(len(methods) / ncols)))
  fig = _figure(figsize=(3.6 * ncols, 3.4 * nrows + 0.6))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  ticks = [constants.LABEL_NAMES[constants.LABEL_POSED], constants.LABEL_NAMES[constants.LABEL_SPONTANEOUS]]
  for i, m in enumerate(methods):
    ax = axes[i // ncols][i % ncols]
    c = np.asarray(conf[m])
    row = c.sum(axis=1, keepdims=True)
    frac = np.divide(c, row, out=np.zeros(c.shape, dtype=float), where=row > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for t in range(2):
      for p in range(2):
        ax.text(
          p,
          t,
          f"{c[t, p]}\n{100 * frac[t, p]:.0f}%",
          ha="center",
          va="center",
          fontsize=10,
          color="white" if frac[t, p] > 0.6 else "black",
        )
    total = int(c.sum())
    acc = 100.0 * np.trace(c) / total if total else math.nan
    ax.set_title(f"{names.get(m, m)}\nn = {total}, acc = {_fmt_pct(acc)}%", fontsize=10)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(ticks)
    ax.set_yticks([0, 1])
    ax.set_yticklabels(ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
  for j in range(len(methods), nrows * ncols):
    axes[j // ncols][j % ncols].axis("off")
  fig.suptitle(
    "Confusion over all finished folds (p > 0.5 → spontaneous)" + (f"\n{subtitle}" if subtitle else ""), fontsize=11
  )
  fig.tight_layout(rect=(0, 0, 1, 0.93))
  return fig


def _write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
  fileio.atomic_write(path, lambda f: df.to_csv(f, index=False))


def _save_fig_atomic(fig, path: Path) -> None:
  fileio.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True)


def write_report(workdir: str | os.PathLike, *, folds: Sequence[int] | None = None) -> str:
  """Write results.md/.csv/.png, folds.csv, predictions_all.csv, confusion.csv/.png into `workdir` and return the
  results.md text (whose core is the Table 1 layout). Reads only the workdir's files."""
  results = load_results(workdir, folds=folds)
  wd = results.workdir
  predictions = load_predictions(results)
  md = report_markdown(results, predictions)
  fileio.write_text(wd / "results.md", md + "\n")
  _write_csv_atomic(results_dataframe(results), wd / "results.csv")
  _write_csv_atomic(folds_dataframe(results), wd / "folds.csv")
  _write_csv_atomic(predictions, wd / "predictions_all.csv")
  conf = confusion_matrices(predictions, results.methods)
  _write_csv_atomic(confusion_dataframe(conf, results.method_names), wd / "confusion.csv")

  _save_fig_atomic(plot_results(results), wd / "results.png")
  _save_fig_atomic(
    plot_confusion(
      conf, results.method_names, subtitle=f"dataset: {results.dataset}, folds: {_fold_list(results.finished)}"
    ),
    wd / "confusion.png",
  )
  logging.info("report written to %s (%d/%d folds finished)", wd, len(results.finished), len(results.folds))
  return md
