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

import dataclasses
import json
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
from smilejax import workdir as workdir_lib
from smilejax.paper import (
    FOLD_MAPPING_NOTE,
    PAPER_TABLE1,
    list_fold_to_paper_fold,
    paper_accuracy_by_list_fold,
)


# ---------------------------------------------------------------------------------------------------------------------
# Loading a workdir
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Results:
    """Everything the report needs, read from a workdir.

    accuracy_pct / ms_per_video: DataFrames indexed by method key (fixed order), one column per expected fold
    (official list number), NaN where the fold is missing/failed or the method absent from its fold_result.json.
    """
    workdir: Path
    methods: tuple[str, ...]
    method_names: dict[str, str]
    folds: tuple[int, ...]                 # expected folds (table columns)
    finished: tuple[int, ...]              # folds with fold_result.json
    failed: dict[int, str]                 # fold -> FAILED message (only folds without fold_result.json)
    missing: tuple[int, ...]               # expected folds not finished (failed ones included)
    accuracy_pct: pd.DataFrame
    ms_per_video: pd.DataFrame
    fold_results: dict[int, dict[str, Any]]
    config: dict[str, Any]
    dataset: str
    backends: tuple[str, ...]
    seed: int | None

    def summary(self, method: str) -> tuple[float, float, int]:
        """(mean, sample std ddof=1, n) of the method's accuracy over the folds it finished; std NaN if n < 2."""
        return _mean_std(self.accuracy_pct.loc[method].to_numpy(dtype=float))

    def no_smile_detected(self) -> dict[int, int | None]:
        """Per expected fold: no_smile_detected count from fold_result.json (None where not finished)."""
        out: dict[int, int | None] = {}
        for k in self.folds:
            r = self.fold_results.get(k)
            out[k] = None if r is None or r.get("no_smile_detected") is None else int(r["no_smile_detected"])
        return out


def _mean_std(values: np.ndarray) -> tuple[float, float, int]:
    v = values[np.isfinite(values)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n >= 2 else math.nan
    return mean, std, n


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _find_key(config: Mapping[str, Any], key: str) -> Any:
    """First value of `key` in a nested config dict (depth-first, top level first), else None."""
    if key in config:
        return config[key]
    for v in config.values():
        if isinstance(v, Mapping):
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _expected_folds(config: Mapping[str, Any], present: Sequence[int]) -> tuple[int, ...]:
    """The folds the run is meant to cover: config "folds" (a list, or a count) if given, else 1..10.

    Fold directories present on disk beyond that set are added, so nothing that finished is hidden.
    """
    spec = _find_key(config, "folds")
    if isinstance(spec, bool) or spec is None:
        folds = set(range(1, constants.NUM_FOLDS + 1))
    elif isinstance(spec, int):
        folds = set(range(1, spec + 1))
    elif isinstance(spec, (list, tuple)) and all(isinstance(k, int) and not isinstance(k, bool) for k in spec):
        folds = set(spec) if spec else set(range(1, constants.NUM_FOLDS + 1))
    else:  # e.g. a fold-list folder path under the same key: not a fold selection
        folds = set(range(1, constants.NUM_FOLDS + 1))
    return tuple(sorted(folds | set(present)))


def _accuracy_pct(value: Any) -> float:
    """fold_result.json stores accuracy as a fraction in [0, 1]; values above 1 are taken as already in %."""
    if value is None:
        return math.nan
    x = float(value)
    if not math.isfinite(x):
        return math.nan
    return x * 100.0 if x <= 1.0 else x


def load_results(workdir: str | os.PathLike, *, folds: Sequence[int] | None = None) -> Results:
    """Read every fold_XX/fold_result.json (and FAILED markers) of `workdir`.

    `folds` overrides the expected fold list (default: config.json "folds", else 1..10). A fold counts as finished
    only when its fold_result.json exists (the experiment writes it last, atomically).
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"{workdir}: workdir does not exist")
    methods, names = methods_lib.METHODS, dict(methods_lib.METHOD_NAMES)
    config_path = workdir / workdir_lib.CONFIG
    config = _read_json(config_path) if config_path.is_file() else {}
    if config.get("methods"):  # a run of some methods only (e.g. the AUDA replication data: no videos)
        methods = tuple(m for m in methods if m in set(config["methods"]))

    present = workdir_lib.folds_present(workdir)
    expected = tuple(sorted(set(folds))) if folds is not None else _expected_folds(config, present)

    fold_results: dict[int, dict[str, Any]] = {}
    failed: dict[int, str] = {}
    for k in expected:
        d = workdir_lib.fold_dir(workdir, k)
        res_path = d / workdir_lib.FOLD_RESULT
        if res_path.is_file():
            fold_results[k] = _read_json(res_path)
        elif (d / workdir_lib.FAILED).is_file():
            lines = (d / workdir_lib.FAILED).read_text(encoding="utf-8").strip().splitlines()
            failed[k] = lines[0].strip() if lines else "(no reason given)"

    acc = pd.DataFrame(np.nan, index=list(methods), columns=list(expected), dtype=float)
    ms = pd.DataFrame(np.nan, index=list(methods), columns=list(expected), dtype=float)
    for k, r in fold_results.items():
        for m in methods:
            acc.loc[m, k] = _accuracy_pct((r.get("accuracy") or {}).get(m))
            v = (r.get("ms_per_video") or {}).get(m)
            ms.loc[m, k] = float(v) if v is not None else math.nan
        extra = set(r.get("accuracy") or {}) - set(methods)
        if extra:
            logging.warning("fold %d: fold_result.json has unknown methods %s (ignored)", k, sorted(extra))

    finished = tuple(sorted(fold_results))
    dataset = _first_of(fold_results, "dataset") or _find_key(config, "dataset") or "unknown"
    seed = _first_of(fold_results, "seed")
    if seed is None:
        seed = _find_key(config, "seed")
    backends = tuple(sorted({str(r["backend"]) for r in fold_results.values() if r.get("backend")}))
    return Results(
        workdir=workdir, methods=tuple(methods), method_names=names, folds=expected, finished=finished,
        failed=failed, missing=tuple(k for k in expected if k not in fold_results), accuracy_pct=acc,
        ms_per_video=ms, fold_results=fold_results, config=config, dataset=str(dataset), backends=backends,
        seed=None if seed is None else int(seed))


def _first_of(fold_results: Mapping[int, Mapping[str, Any]], key: str) -> Any:
    for k in sorted(fold_results):
        v = fold_results[k].get(key)
        if v is not None:
            return v
    return None


def load_predictions(results: Results) -> pd.DataFrame:
    """predictions.csv of every FINISHED fold, concatenated (sorted by fold, then id).

    A predictions.csv without fold_result.json belongs to an unfinished fold and is left out.
    """
    frames = []
    for k in results.finished:
        path = workdir_lib.fold_dir(results.workdir, k) / workdir_lib.PREDICTIONS
        if not path.is_file():
            logging.warning("fold %d finished but has no predictions.csv: %s", k, path)
            continue
        df = pd.read_csv(path, dtype={"id": str, "subject": str})
        if "fold" not in df.columns:
            df.insert(3, "fold", k)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["id", "subject", "label", "fold", *results.methods])
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["fold", "id"], kind="stable").reset_index(drop=True)


def confusion_matrices(predictions: pd.DataFrame, methods: Sequence[str], *,
                       threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Per method, the 2x2 counts C[true, predicted] (0 posed, 1 spontaneous); predicted = 1 iff p > threshold
    (the training code's rule: p > 0.5, i.e. logit > 0).

    Rows whose probability is missing (NaN) for a method are left out of that method's matrix.
    """
    out = {}
    for m in methods:
        c = np.zeros((2, 2), dtype=np.int64)
        if m in predictions.columns and len(predictions):
            p = predictions[m].to_numpy(dtype=float)
            ok = np.isfinite(p)
            y = predictions["label"].to_numpy()[ok].astype(int)
            yhat = (p[ok] > threshold).astype(int)
            np.add.at(c, (y, yhat), 1)
        out[m] = c
    return out


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
    """"78.1 ± 3.0", with "(n/N folds)" appended whenever fewer folds than expected entered the mean."""
    if n == 0:
        return f"{_DASH} (0/{n_expected} folds)"
    s = f"{mean:.1f}" if not math.isfinite(std) else f"{mean:.1f} ± {std:.1f}"
    if n < n_expected:
        s += f" ({n}/{n_expected} folds)"
    return s


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def results_table_markdown(results: Results) -> str:
    """Table 1 layout for our numbers: Method | Time [ms] | fold columns | Average."""
    n_exp = len(results.folds)
    uvanemo = results.dataset == "uvanemo"
    header = ["Method", "Time [ms]"] + [
        f"{k} (p{list_fold_to_paper_fold(k)})" if uvanemo and 1 <= k <= 10 else str(k) for k in results.folds
    ] + ["Average"]
    rows = []
    for m in results.methods:
        accs = results.accuracy_pct.loc[m]
        mean, std, n = results.summary(m)
        ms_mean = float(np.nanmean(results.ms_per_video.loc[m])) if np.isfinite(
            results.ms_per_video.loc[m].to_numpy(dtype=float)).any() else math.nan
        rows.append([results.method_names.get(m, m), _fmt_ms(ms_mean)]
                    + [_fmt_pct(float(accs[k])) for k in results.folds]
                    + [format_average(mean, std, n, n_exp)])
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
        rows.append([names.get(m, m), f"{row.ms:.1f}"] + [f"{v:.1f}" for v in vals]
                    + [f"{row.mean:.1f} ± {row.std:.1f}"])
    return _md_table(header, rows, ["l", "r"] + ["r"] * constants.NUM_FOLDS + ["r"])


def _backend_line(results: Results) -> str:
    if not results.backends:
        return "unknown (no finished fold)"
    if len(results.backends) == 1:
        return results.backends[0]
    return "; ".join(results.backends) + " (MIXED: timings come from different machines)"


def _fold_list(ks: Sequence[int]) -> str:
    return ", ".join(str(k) for k in ks) if ks else "none"


def report_markdown(results: Results, predictions: pd.DataFrame | None = None) -> str:
    """The full results.md text."""
    n_exp = len(results.folds)
    seed = "unknown" if results.seed is None else str(results.seed)
    lines = [
        f"# Results: dataset {results.dataset}",
        "",
        f"Backend: {_backend_line(results)} · dataset: {results.dataset} · seed: {seed} · "
        f"folds finished: {len(results.finished)}/{n_exp}"
        + (f" (not finished: {_fold_list(results.missing)})" if results.missing else ""),
        "",
    ]
    full = tuple(range(1, constants.NUM_FOLDS + 1))
    if results.folds != full and set(results.folds) <= set(full):
        lines += [f"This run covers folds {_fold_list(results.folds)} only, not all {constants.NUM_FOLDS}: its "
                  "averages are not comparable with a 10-fold mean.", ""]
    if results.dataset == "synthetic":
        lines += ["**These are synthetic test-bed numbers, not evidence about real smiles.** The corpus is "
                  "generated by smilejax.synthetic (spec/synthetic.md); the accuracies say whether the pipeline "
                  "learns what the generator put in, nothing about human smiles.", ""]
    lines += ["Accuracy in % on each test fold; Time = milliseconds per test video (mean over finished folds, "
              "backend above); Average = mean ± sample std (ddof = 1) over the finished folds.", ""]
    lines.append(results_table_markdown(results))
    lines.append("")
    notes = ["Fold k = the official UvA-NEMO list k (`P_fold_all_k.txt` ∪ `S_fold_all_k.txt`) or, for the "
             "synthetic corpus, its own `folds/` list k."]
    if results.dataset == "uvanemo":
        notes.append(f"\"(pN)\" = the paper's fold number for that list: {FOLD_MAPPING_NOTE}; per-fold comparisons "
                     "with the paper below use this mapping.")
    if results.missing:
        notes.append(f"{_DASH} = fold not finished; the Average covers only the finished folds and says how many.")
    lines += [f"- {n}" for n in notes]
    lines.append("")

    # Per-fold bookkeeping: no_smile_detected and test-set sizes.
    nsd = results.no_smile_detected()
    header = ["", *[str(k) for k in results.folds], "total"]
    nsd_vals = [v for v in nsd.values() if v is not None]
    n_test = {k: results.fold_results[k].get("n_test") for k in results.finished}
    rows = [["no_smile_detected (test videos)"] + [_DASH if nsd[k] is None else str(nsd[k]) for k in results.folds]
            + [str(sum(nsd_vals)) if nsd_vals else _DASH],
            ["n_test"] + [_DASH if n_test.get(k) is None else str(n_test[k]) for k in results.folds]
            + [str(sum(v for v in n_test.values() if v is not None)) if n_test else _DASH]]
    lines += ["## Per fold", "", _md_table(header, rows, ["l"] + ["r"] * (len(results.folds) + 1)), ""]
    if results.failed:
        lines += ["Failed folds:", ""] + [f"- fold {k}: {msg}" for k, msg in sorted(results.failed.items())] + [""]

    if predictions is not None and len(predictions):
        mism = _accuracy_mismatches(results, predictions)
        if mism:
            lines += ["Warning: accuracy recomputed from predictions.csv (p > 0.5) differs from fold_result.json "
                      "for: " + ", ".join(f"fold {k} {m} ({a:.2f} vs {b:.2f})" for k, m, a, b in mism), ""]

    lines += ["## Paper, Table 1 (reference; UvA-NEMO, times on an RTX 2080)", "",
              "As published (paper fold numbering p1..p10):", "", paper_table_markdown(order="paper"), ""]
    if results.dataset == "uvanemo":
        lines += [f"The same numbers in official-list order ({FOLD_MAPPING_NOTE}), aligned with our columns:", "",
                  paper_table_markdown(order="list"), ""]
    else:
        lines += [f"Per-fold paper numbers are comparable only on UvA-NEMO, where {FOLD_MAPPING_NOTE}.", ""]
    return "\n".join(lines)


def _accuracy_mismatches(results: Results, predictions: pd.DataFrame,
                         tol_pct: float = 0.05) -> list[tuple[int, str, float, float]]:
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
        row: dict[str, Any] = {"method": m, "name": results.method_names.get(m, m),
                               "ms_per_video": float(np.nanmean(msv)) if np.isfinite(msv).any() else math.nan}
        for k in results.folds:
            row[f"fold_{k}"] = float(results.accuracy_pct.loc[m, k])
        row.update({"mean": mean, "std": std, "n_folds": n, "n_expected_folds": len(results.folds),
                    "dataset": results.dataset, "seed": results.seed, "backend": _backend_line(results)})
        rows.append(row)
    return pd.DataFrame(rows)


def folds_dataframe(results: Results) -> pd.DataFrame:
    """folds.csv content: per expected fold its status and counts from fold_result.json."""
    rows = []
    for k in results.folds:
        r = results.fold_results.get(k, {})
        status = "done" if k in results.fold_results else ("failed" if k in results.failed else "missing")
        rows.append({"fold": k, "status": status,
                     **{key: r.get(key) for key in ("n_test", "n_train", "n_val", "no_smile_detected", "wall_s",
                                                   "backend", "seed")},
                     "failed_reason": results.failed.get(k, "")})
    return pd.DataFrame(rows)


def confusion_dataframe(conf: Mapping[str, np.ndarray], names: Mapping[str, str]) -> pd.DataFrame:
    """confusion.csv content: per method two rows (true posed / true spontaneous), predicted counts as columns."""
    rows = []
    for m, c in conf.items():
        for t in (constants.LABEL_POSED, constants.LABEL_SPONTANEOUS):
            rows.append({"method": m, "name": names.get(m, m), "true": constants.LABEL_NAMES[t],
                         "pred_posed": int(c[t, constants.LABEL_POSED]),
                         "pred_spontaneous": int(c[t, constants.LABEL_SPONTANEOUS])})
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
            ax.plot([xi], [y_lo + 1.5], marker="x", color="#d62728", markersize=8, mew=2, zorder=3,
                    clip_on=False)
        mean, std, n = results.summary(m)
        label = "ours: " + format_average(mean, std, n, len(folds))
        if n:
            ax.axhline(mean, color=color_ours, ls=":", lw=1.5, zorder=1)
        if uvanemo:
            paper = paper_accuracy_by_list_fold(m)
            pv = np.array([paper.get(k, math.nan) for k in folds], dtype=float)
            ax.bar(x + width / 2, pv - y_lo, bottom=y_lo, width=width, color="#bbbbbb", edgecolor="k", lw=0.5,
                   zorder=2)
            ax.axhline(PAPER_TABLE1[m].mean, color="k", ls="--", lw=1.0, zorder=1)
            label += f"  ·  paper: {PAPER_TABLE1[m].mean:.1f} ± {PAPER_TABLE1[m].std:.1f}"
        ax.set_title(f"{results.method_names.get(m, m)}\n{label}", fontsize=10)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{k}\np{list_fold_to_paper_fold(k)}" if uvanemo and 1 <= k <= 10 else str(k)
                            for k in folds], fontsize=8)
        ax.set_ylim(y_lo, y_hi)
        ax.grid(axis="y", color="0.9", zorder=0)
        ax.set_axisbelow(True)
        if i % ncols == 0:
            ax.set_ylabel("accuracy [%]")
        if i // ncols == nrows - 1:
            ax.set_xlabel("fold (official list; pN = paper fold)" if uvanemo else "fold")
    for j in range(n_m, nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")

    handles = [Patch(color=color_ours, label="ours (per fold)"),
               Line2D([], [], color=color_ours, ls=":", label="ours (mean)")]
    if uvanemo:
        handles += [Patch(facecolor="#bbbbbb", edgecolor="k", label="paper Table 1 (per fold, mapped to list)"),
                    Line2D([], [], color="k", ls="--", label="paper (mean)")]
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
                ax.text(p, t, f"{c[t, p]}\n{100 * frac[t, p]:.0f}%", ha="center", va="center", fontsize=10,
                        color="white" if frac[t, p] > 0.6 else "black")
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
    fig.suptitle("Confusion over all finished folds (p > 0.5 → spontaneous)" + (f"\n{subtitle}" if subtitle else ""),
                 fontsize=11)
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
    _save_fig_atomic(plot_confusion(conf, results.method_names,
                                    subtitle=f"dataset: {results.dataset}, folds: {_fold_list(results.finished)}"),
                     wd / "confusion.png")
    logging.info("report written to %s (%d/%d folds finished)", wd, len(results.finished), len(results.folds))
    return md
