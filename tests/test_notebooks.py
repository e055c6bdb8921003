"""The notebooks run: each is executed headless (nbclient, a fresh kernel) on the tiny config, in a temporary copy of
notebooks/, and a cell that raises fails its test. They share one tiny corpus (conftest's ``tiny_corpus``) and one
trained fold (quickstart.ipynb trains it; the others read its workdir) through the environment variables the notebooks
read: SMILEJAX_REPO, SMILEJAX_SYNTHETIC_DIR, SMILEJAX_WORKDIR, SMILEJAX_FIGURE_DIR (each notebook saves its main figure
there; ``SMILEJAX_FIGURE_DIR=$PWD/docs pytest tests/test_notebooks.py`` redraws docs/notebook_*.png).

The committed notebooks carry no outputs; the structural checks below need no kernel.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import SHARED, in_ci, shared_path
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from smilejax import constants, plots, table1
from smilejax import workdir as workdir_lib
from smilejax.auda import layout
from smilejax.errors import InputError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("quickstart.ipynb", "auda_features.ipynb", "reproduce_table1.ipynb", "results.ipynb", "explain.ipynb")
# Seconds per notebook (each cell is held to the same limit); quickstart trains fold 1 of the tiny config.
TIMEOUT_S = {"quickstart.ipynb": 420}
DEFAULT_TIMEOUT_S = 240


def test_every_notebook_is_tested():
  assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs_and_cells_parse(name):
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata["kernelspec"]["name"] == "python3"
  ids = [c["id"] for c in nb.cells]
  assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
  code = [c for c in nb.cells if c.cell_type == "code"]
  for c in code:
    assert c.outputs == [] and c.execution_count is None, f"{name}:{c.id}: outputs not stripped"
    assert not c.metadata.get("execution"), f"{name}:{c.id}: execution metadata not stripped"
    ast.parse(c.source, filename=f"{name}:{c.id}")
  # the first code cell installs smilejax where it is missing (Colab) and finds the checkout's configs/
  first = code[0].source
  assert 'find_spec("smilejax")' in first and "pip" in first and "SMILEJAX_REPO" in first


def test_source_kind(tmp_path):
  assert table1.source_kind("") == "synthetic" and table1.source_kind(None) == "synthetic"
  (tmp_path / "wd" / "fold_01").mkdir(parents=True)
  assert table1.source_kind(tmp_path / "wd") == "workdir"
  for kind, folders in {
    "auda_package": ("action_units", "smile_intensities"),
    "uvanemo": ("videos", "openface", "smile_intensities"),
    "auda_corpus": ("openface", "smile_intensities"),
  }.items():
    for f in folders:
      (tmp_path / kind / f).mkdir(parents=True)
    assert table1.source_kind(tmp_path / kind) == kind
  (tmp_path / "other").mkdir()
  with pytest.raises(InputError, match="not a workdir"):
    table1.source_kind(tmp_path / "other")
  with pytest.raises(InputError, match="folder not found"):
    table1.source_kind(tmp_path / "absent")


def test_feature_matrices_follow_the_layout():
  aw = plots.au_wise_matrix(np.arange(layout.AU_WISE_SEGMENT_DIM * 4))
  assert aw.shape == (4 * 7, constants.NUM_AUS)
  assert aw.loc["apex: max Δ9", "AU12"] == layout.au_wise_feature_names().index("apex: AU12 max Δ9")
  cx = plots.cross_au_matrix(
    np.arange(layout.CROSS_AU_SEGMENT_DIM * 4), segment="onset", kind="Δt max increase", window=9
  )
  want = layout.cross_au_feature_names().index("onset: AU06-AU12 Δt max increase 9")
  assert cx.loc["AU06", "AU12"] == cx.loc["AU12", "AU06"] == want
  assert (
    np.isnan(np.diag(cx.to_numpy())).all() and np.isfinite(cx.to_numpy()[~np.eye(constants.NUM_AUS, dtype=bool)]).all()
  )
  with pytest.raises(InputError):
    plots.cross_au_matrix(np.zeros(10))


# --------------------------------------------------------------------------------------------------- executed


@pytest.mark.timeout(120)
def test_a_raising_cell_fails(tmp_path):
  nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('broken cell')")])
  with pytest.raises(CellExecutionError, match="broken cell"):
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_corpus):
  """The environment every notebook runs in: the session's tiny corpus (conftest), one workdir, one figure folder."""
  root = tmp_path_factory.mktemp("notebooks")
  corpus = tiny_corpus
  figures = Path(os.environ.get("SMILEJAX_FIGURE_DIR") or root / "figures")
  figures.mkdir(parents=True, exist_ok=True)
  env = dict(os.environ)
  env.update(
    SMILEJAX_REPO=str(REPO),
    SMILEJAX_SYNTHETIC_DIR=str(corpus),
    SMILEJAX_WORKDIR=str(root / "workdir"),
    SMILEJAX_FIGURE_DIR=str(figures),
  )
  env.pop("SMILEJAX_DATA", None)
  copy = root / "notebooks"
  shutil.copytree(NOTEBOOKS, copy)
  return {"env": env, "copy": copy, "workdir": root / "workdir", "figures": figures}


def _execute(shared, name: str) -> nbformat.NotebookNode:
  """Run a copy of the notebook in a fresh kernel from the copied notebooks/ folder; a raising cell raises here."""
  path = shared["copy"] / name
  nb = nbformat.read(path, as_version=4)
  timeout = TIMEOUT_S.get(name, DEFAULT_TIMEOUT_S)
  client = NotebookClient(
    nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(shared["copy"])}}
  )
  client.execute(env=shared["env"])
  return nb


@pytest.fixture(scope="module")
def quickstart(shared):
  """quickstart.ipynb executed once: it trains fold 1 of the tiny config into the shared workdir."""
  return _execute(shared, "quickstart.ipynb")


def _figures(nb) -> int:
  return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))


@pytest.mark.timeout(600)
def test_quickstart(shared, quickstart):
  assert workdir_lib.is_finished(shared["workdir"], 1)
  assert (shared["workdir"] / "results.md").is_file()
  assert _figures(quickstart) >= 2  # the pair's frames and the per-fold figure
  assert (shared["figures"] / "notebook_quickstart.png").stat().st_size > 10_000


@pytest.mark.timeout(DEFAULT_TIMEOUT_S + 60)
def test_auda_features(shared):
  nb = _execute(shared, "auda_features.ipynb")
  assert _figures(nb) == 2
  for png in ("notebook_auda_features.png", "notebook_auda_heatmaps.png"):
    assert (shared["figures"] / png).stat().st_size > 10_000
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  # The notebook compares its phases with the authors' reference where ../shared has it (and CI must have it).
  if (SHARED / "data" / "auda_reference" / "smile_time_series.txt").is_file() or in_ci():
    shared_path("data", "auda_reference", "smile_time_series.txt")
    assert "phases equal to the original's: True" in text


@pytest.mark.timeout(DEFAULT_TIMEOUT_S + 60)
@pytest.mark.parametrize("name", ["reproduce_table1.ipynb", "results.ipynb", "explain.ipynb"])
def test_notebooks_on_the_trained_fold(shared, quickstart, name):
  before = json.loads((workdir_lib.fold_dir(shared["workdir"], 1) / workdir_lib.FOLD_RESULT).read_text())
  nb = _execute(shared, name)
  assert _figures(nb) >= 1
  assert (shared["figures"] / f"notebook_{name.removesuffix('.ipynb')}.png").stat().st_size > 10_000
  after = json.loads((workdir_lib.fold_dir(shared["workdir"], 1) / workdir_lib.FOLD_RESULT).read_text())
  assert after == before  # read back, not retrained
