"""Tests for smilejax/report.py on a fake workdir (fixed random fold results, one fold missing, one failed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from smilejax import methods, paper, report

METHODS, NAMES = methods.METHODS, methods.METHOD_NAMES
FOLD_SIZES = {1: 124, 2: 126, 3: 125, 4: 127, 5: 125, 6: 125, 7: 124, 8: 125, 9: 114, 10: 125}


def make_fake_workdir(
  root: Path,
  *,
  dataset: str = "synthetic",
  missing: tuple[int, ...] = (7,),
  failed: dict[int, str] | None = None,
  seed: int = 0,
  orphan_predictions: int | None = None,
  n_scale: float = 0.2,
) -> dict:
  """A workdir as experiment.py leaves it: fold_XX/{predictions.csv, fold_result.json} for every fold not in
  `missing`; `failed` folds get a FAILED file; `orphan_predictions` gets a predictions.csv but no fold_result.json.
  Accuracies in fold_result.json are computed from the predictions (p > 0.5 = spontaneous). Returns the truth."""
  failed = failed or {}
  rng = np.random.default_rng(seed)
  root.mkdir(parents=True, exist_ok=True)
  (root / "config.json").write_text(json.dumps({"seed": seed, "dataset": dataset}))
  truth = {"acc": {}, "ms": {}, "preds": {}, "no_smile": {}}
  for k in range(1, 11):
    d = root / f"fold_{k:02d}"
    d.mkdir()
    n = max(8, int(FOLD_SIZES[k] * n_scale))
    label = rng.integers(0, 2, size=n)
    ids = [f"{100 * k + i:03d}_{'spontaneous' if y else 'deliberate'}_smile_1" for i, y in enumerate(label)]
    df = pd.DataFrame({"id": ids, "subject": [s.split("_")[0] for s in ids], "label": label, "fold": k})
    # Per method: a skill level, then probabilities that agree with the label with that probability.
    for j, m in enumerate(METHODS):
      skill = 0.6 + 0.05 * j
      correct = rng.random(n) < skill
      p_right = rng.uniform(0.5, 1.0, size=n)
      prob_spont = np.where(label == 1, p_right, 1 - p_right)
      prob_spont = np.where(correct, prob_spont, 1 - prob_spont)
      prob_spont = np.clip(prob_spont, 0.0, 1.0)
      # keep exact 0.5 away: the threshold's side must not depend on rounding in CSV
      prob_spont = np.where(np.abs(prob_spont - 0.5) < 1e-3, np.where(correct == (label == 1), 0.6, 0.4), prob_spont)
      df[m] = prob_spont
    if k in missing and k != orphan_predictions:
      if k in failed:
        (d / "FAILED").write_text(failed[k] + "\n")
      continue
    df.to_csv(d / "predictions.csv", index=False)
    if k in missing:  # orphan: predictions but the fold never finished
      continue
    acc = {m: float(np.mean((df[m].to_numpy() > 0.5).astype(int) == label)) for m in METHODS}
    ms = {m: float(rng.uniform(0.5, 150.0)) for m in METHODS}
    nsd = int(rng.integers(0, 4))
    result = {
      "fold": k,
      "accuracy": acc,
      "ms_per_video": ms,
      "n_test": n,
      "n_train": 900,
      "n_val": 100,
      "no_smile_detected": nsd,
      "selected_epoch": {m: 3 for m in METHODS},
      "backend": "cpu: Fake CPU model 9000",
      "dataset": dataset,
      "seed": seed,
      "wall_s": 12.5,
    }
    (d / "fold_result.json").write_text(json.dumps(result))
    truth["acc"][k] = acc
    truth["ms"][k] = ms
    truth["preds"][k] = df
    truth["no_smile"][k] = nsd
  return truth


def test_paper_fold_mapping():
  assert [paper.paper_fold_to_list_fold(k) for k in range(1, 11)] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 1]
  assert paper.paper_fold_to_list_fold(10) == 1
  for k in range(1, 11):
    assert paper.list_fold_to_paper_fold(paper.paper_fold_to_list_fold(k)) == k
  # The mapping is what makes the paper's implied test sizes (auda.md §13) equal the official list sizes.
  thesis_sizes_by_paper_fold = [126, 125, 127, 125, 125, 124, 125, 114, 125, 124]
  for pk, size in enumerate(thesis_sizes_by_paper_fold, start=1):
    assert FOLD_SIZES[paper.paper_fold_to_list_fold(pk)] == size
  by_list = paper.paper_accuracy_by_list_fold("realsmilenet")
  assert by_list[1] == 77.4  # paper fold 10
  assert by_list[2] == 73.8  # paper fold 1
  assert by_list[10] == 72.8  # paper fold 9
  with pytest.raises(ValueError):
    paper.paper_fold_to_list_fold(0)


def test_paper_table_matches_its_printed_mean_and_sample_std():
  # The paper's ± is the sample std (ddof = 1) of its per-fold row (realsmilenet.md §6, auda.md §13).
  assert set(paper.PAPER_TABLE1) == set(METHODS)
  for m, row in paper.PAPER_TABLE1.items():
    v = np.array(row.folds)
    assert len(v) == 10
    assert abs(v.mean() - row.mean) <= 0.051, m
    assert abs(v.std(ddof=1) - row.std) <= 0.051, m
  assert paper.PAPER_TABLE1["fusion_all"].ms == 164.5


def test_load_results_marks_missing_and_failed(tmp_path):
  truth = make_fake_workdir(tmp_path, missing=(7, 9), failed={9: "OOM in fold 9"}, orphan_predictions=7)
  res = report.load_results(tmp_path)
  assert res.folds == tuple(range(1, 11))
  assert res.missing == (7, 9)
  assert res.failed == {9: "OOM in fold 9"}
  assert res.finished == (1, 2, 3, 4, 5, 6, 8, 10)
  assert res.dataset == "synthetic" and res.seed == 0
  assert res.backends == ("cpu: Fake CPU model 9000",)
  for m in METHODS:
    assert math.isnan(res.accuracy_pct.loc[m, 7]) and math.isnan(res.accuracy_pct.loc[m, 9])
    for k in res.finished:
      assert res.accuracy_pct.loc[m, k] == pytest.approx(100 * truth["acc"][k][m])
      assert res.ms_per_video.loc[m, k] == pytest.approx(truth["ms"][k][m])
    mean, std, n = res.summary(m)
    vals = np.array([100 * truth["acc"][k][m] for k in res.finished])
    assert n == 8
    assert mean == pytest.approx(vals.mean())
    assert std == pytest.approx(vals.std(ddof=1))
    assert std != pytest.approx(vals.std(ddof=0))  # ddof really is 1
  nsd = res.no_smile_detected()
  assert nsd[7] is None and nsd[1] == truth["no_smile"][1]
  # the orphan predictions.csv of unfinished fold 7 must not enter the concatenation
  preds = report.load_predictions(res)
  assert sorted(preds["fold"].unique()) == list(res.finished)


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
  """One synthetic workdir (fold 7 missing) with its report written; shared because drawing is the slow part."""
  wd = tmp_path_factory.mktemp("wd_synthetic")
  truth = make_fake_workdir(wd, missing=(7,))
  md = report.write_report(wd)
  return wd, truth, md


def test_write_report_files_and_numbers(synthetic_report):
  tmp_path, truth, md = synthetic_report
  for name in (
    "results.md",
    "results.csv",
    "results.png",
    "predictions_all.csv",
    "confusion.csv",
    "confusion.png",
    "folds.csv",
  ):
    assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, name
  assert (tmp_path / "results.md").read_text(encoding="utf-8").strip() == md.strip()
  assert "synthetic test-bed numbers, not evidence about real smiles" in md
  assert "cpu: Fake CPU model 9000" in md and "seed: 0" in md

  finished = [k for k in range(1, 11) if k != 7]
  table_lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
  for m in METHODS:
    vals = np.array([100 * truth["acc"][k][m] for k in finished])
    expected_avg = f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f} (9/10 folds)"
    row = next(ln for ln in table_lines if ln.startswith(f"| {NAMES[m]} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-1] == expected_avg
    assert cells[2 + 6] == "—"  # fold 7 column
    assert cells[2] == f"{100 * truth['acc'][1][m]:.1f}"  # fold 1 column
    ms_mean = np.mean([truth["ms"][k][m] for k in finished])
    assert cells[1] == (f"{ms_mean:.1f}" if ms_mean >= 10 else f"{ms_mean:.2f}")

  csv = pd.read_csv(tmp_path / "results.csv")
  assert list(csv["method"]) == list(METHODS)
  for m in METHODS:
    r = csv.set_index("method").loc[m]
    vals = np.array([100 * truth["acc"][k][m] for k in finished])
    assert r["mean"] == pytest.approx(vals.mean())
    assert r["std"] == pytest.approx(vals.std(ddof=1))
    assert r["n_folds"] == 9 and r["n_expected_folds"] == 10
    assert math.isnan(r["fold_7"])
    assert r["fold_3"] == pytest.approx(100 * truth["acc"][3][m])

  folds = pd.read_csv(tmp_path / "folds.csv").set_index("fold")
  assert folds.loc[7, "status"] == "missing" and folds.loc[1, "status"] == "done"
  assert folds.loc[2, "no_smile_detected"] == truth["no_smile"][2]


def test_confusion_counts_match_predictions(synthetic_report):
  tmp_path, truth, _ = synthetic_report
  allp = pd.concat([truth["preds"][k] for k in sorted(truth["preds"])], ignore_index=True)
  written = pd.read_csv(tmp_path / "predictions_all.csv")
  assert len(written) == len(allp)
  assert sorted(written["fold"].unique()) == sorted(truth["preds"])
  conf = pd.read_csv(tmp_path / "confusion.csv")
  for m in METHODS:
    y = allp["label"].to_numpy()
    yhat = (allp[m].to_numpy() > 0.5).astype(int)
    c = conf[conf["method"] == m].set_index("true")
    assert c.loc["posed", "pred_posed"] == np.sum((y == 0) & (yhat == 0))
    assert c.loc["posed", "pred_spontaneous"] == np.sum((y == 0) & (yhat == 1))
    assert c.loc["spontaneous", "pred_posed"] == np.sum((y == 1) & (yhat == 0))
    assert c.loc["spontaneous", "pred_spontaneous"] == np.sum((y == 1) & (yhat == 1))
    # the fold accuracies came from the same predictions: the pooled diagonal must agree
    assert (c.loc["posed", "pred_posed"] + c.loc["spontaneous", "pred_spontaneous"]) / len(y) == pytest.approx(
      np.mean(y == yhat)
    )


def test_uvanemo_report_prints_mapping_and_paper_in_list_order(tmp_path):
  make_fake_workdir(tmp_path, dataset="uvanemo", missing=())
  res = report.load_results(tmp_path)
  md = report.report_markdown(res)
  assert "not evidence about real smiles" not in md
  assert "paper fold 10 = list 1" in md
  assert "(9/10 folds)" not in md and "—" not in md.split("## Per fold")[0]
  # In the list-ordered paper table, list fold 1 carries paper fold 10's number (RealSmileNet: 77.4).
  list_part = md.split("official-list order")[1]
  row = next(ln for ln in list_part.splitlines() if ln.startswith("| RealSmileNet |"))
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[2] == "77.4" and cells[3] == "73.8" and cells[-1] == "74.4 ± 1.9"
  header = next(ln for ln in md.splitlines() if ln.startswith("| Method |"))
  assert "1 (p10)" in header and "2 (p1)" in header


def test_format_average_and_single_fold():
  assert report.format_average(78.123, 2.96, 10, 10) == "78.1 ± 3.0"
  assert report.format_average(78.123, 2.96, 9, 10) == "78.1 ± 3.0 (9/10 folds)"
  assert report.format_average(70.0, float("nan"), 1, 10) == "70.0 (1/10 folds)"
  assert report.format_average(float("nan"), float("nan"), 0, 10) == "— (0/10 folds)"


def test_config_fold_subset(tmp_path):
  make_fake_workdir(tmp_path, missing=(3, 4, 5, 6, 7, 8, 9, 10))
  (tmp_path / "config.json").write_text(json.dumps({"seed": 0, "experiment": {"folds": [1, 2]}}))
  res = report.load_results(tmp_path)
  assert res.folds == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)  # fold dirs on disk are never hidden
  for d in tmp_path.glob("fold_*"):
    if d.name not in ("fold_01", "fold_02"):
      for f in d.iterdir():
        f.unlink()
      d.rmdir()
  res = report.load_results(tmp_path)
  assert res.folds == (1, 2) and res.missing == ()
  assert "(2/" not in report.results_table_markdown(res)


def _bar_tops_by_fold(bars, folds, offset):
  """{fold: top of its bar} for bars centred at (fold position + offset) on the x axis."""
  tops = {}
  for p in bars:
    pos = p.get_x() + p.get_width() / 2 - offset
    assert pos == pytest.approx(round(pos)), pos
    tops[folds[round(pos)]] = p.get_y() + p.get_height()
  return tops


def test_figure_bars_are_the_fold_accuracies_and_paper_only_for_uvanemo(tmp_path):
  """One panel per method (in order, titled with its name); each of our bars stands at its fold and reaches that
  fold's accuracy in %, a missing fold has none; on UvA-NEMO the paper's bar beside it reaches the paper's number
  for that list fold."""
  for ds in ("uvanemo", "synthetic"):
    wd = tmp_path / ds
    truth = make_fake_workdir(wd, dataset=ds, missing=(2,))
    res = report.load_results(wd)
    fig = report.plot_results(res)
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == len(METHODS)
    folds = list(res.folds)
    finished = [k for k in folds if k != 2]
    for ax, m in zip(panels, METHODS):
      assert ax.get_title().startswith(NAMES[m])
      ours = [p for p in ax.patches if to_hex(p.get_facecolor()) == "#1f77b4"]
      others = [p for p in ax.patches if to_hex(p.get_facecolor()) != "#1f77b4"]
      half = ours[0].get_width() / 2 if ds == "uvanemo" else 0.0
      tops = _bar_tops_by_fold(ours, folds, -half)
      assert sorted(tops) == finished, m
      for k in finished:
        assert tops[k] == pytest.approx(100 * truth["acc"][k][m], abs=1e-9), (ds, m, k)
      if ds == "synthetic":
        assert others == []
      else:
        paper_tops = _bar_tops_by_fold(others, folds, half)
        want = paper.paper_accuracy_by_list_fold(m)
        assert paper_tops == {k: pytest.approx(want[k], abs=1e-9) for k in folds}, m


def test_confusion_threshold_is_the_training_rule():
  # smilejax.train counts p > 0.5 (logit > 0) as spontaneous: p = 0.5 exactly is "posed"; NaN rows are left out.
  df = pd.DataFrame({"label": [0, 0, 1, 1, 1], "m": [0.5, 0.51, 0.5, 0.9, np.nan]})
  c = report.confusion_matrices(df, ["m"])["m"]
  np.testing.assert_array_equal(c, [[1, 1], [1, 1]])


def test_subset_run_is_flagged(tmp_path):
  make_fake_workdir(tmp_path, missing=())
  (tmp_path / "config.json").write_text(json.dumps({"seed": 0, "folds": [1, 2]}))
  for d in tmp_path.glob("fold_*"):
    if d.name not in ("fold_01", "fold_02"):
      for f in d.iterdir():
        f.unlink()
      d.rmdir()
  md = report.report_markdown(report.load_results(tmp_path))
  assert "covers folds 1, 2 only" in md
  assert "folds finished: 2/2" in md
