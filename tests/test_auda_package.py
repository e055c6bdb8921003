"""The AUDA replication-data package layout (auda.md section 12): reading loose names, writing, round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import raises_input_error, shared_path

from smilejax.constants import AU_NAMES, AU_NUMBERS, NUM_AUS
from smilejax.errors import InputError
from smilejax.io import auda_package as pkg

VID = "001_deliberate_smile_2"


def _video(vid=VID, t=31, seed=0):
  rng = np.random.default_rng(seed)
  return pkg.AudaPackageVideo(
    id=vid,
    au_TxA=rng.normal(size=(t, NUM_AUS)) * 3,
    si_T=rng.normal(size=t) * 0.01,
    dynamics={"delta_9": rng.normal(size=(t, NUM_AUS)), "2nd_delta_adjusted_27": rng.normal(size=(t, NUM_AUS))},
    au_wise={"onset": rng.normal(size=pkg.AU_WISE_LENGTH), "whole_smile": rng.normal(size=pkg.AU_WISE_LENGTH)},
    cross_au={"apex": rng.normal(size=pkg.CROSS_AU_LENGTH)},
  )


def test_round_trip(tmp_path):
  videos = {VID: _video(), "002_spontaneous_smile_1": _video("002_spontaneous_smile_1", t=12, seed=1)}
  pkg.write_auda_package(tmp_path, videos)
  header = (tmp_path / "action_units" / f"{VID}_action_units.txt").read_text().splitlines()[0]
  assert header == ",".join(AU_NAMES)
  assert (tmp_path / "features" / "AU-wise_whole_smile" / f"{VID}.txt").is_file()
  back = pkg.read_auda_package(tmp_path)
  assert sorted(back) == sorted(videos)
  for vid, v in videos.items():
    b = back[vid]
    np.testing.assert_array_equal(b.au_TxA, v.au_TxA)  # "%.17g" round-trips exactly
    np.testing.assert_array_equal(b.si_T, v.si_T)
    assert sorted(b.dynamics) == sorted(v.dynamics)
    for k in v.dynamics:
      np.testing.assert_array_equal(b.dynamics[k], v.dynamics[k])
    assert sorted(b.au_wise) == sorted(v.au_wise) and sorted(b.cross_au) == sorted(v.cross_au)
    for k in v.au_wise:
      np.testing.assert_array_equal(b.au_wise[k], v.au_wise[k])
    np.testing.assert_array_equal(b.cross_au["apex"], v.cross_au["apex"])
  only = pkg.read_auda_package(tmp_path, ids=["002_spontaneous_smile_1"])
  assert list(only) == ["002_spontaneous_smile_1"]


def test_loose_names(tmp_path):
  """Alphabetical AU columns named AU1..AU45 plus AU28 and presence columns; feature folders with spaces."""
  rng = np.random.default_rng(3)
  au = rng.normal(size=(9, NUM_AUS))
  names = [f"AU{n}" for n in AU_NUMBERS] + ["AU28", "AU01_c"]
  values = np.concatenate([au, rng.normal(size=(9, 2))], axis=1)
  order = np.argsort(names)  # alphabetical as [T] writes: AU1, AU10, AU12, ...
  (tmp_path / "action_units").mkdir()
  table = (
    ", ".join(names[i] for i in order)
    + "\n"
    + "\n".join(", ".join(repr(float(row[i])) for i in order) for row in values)
    + "\n"
  )
  (tmp_path / "action_units" / f"{VID}_au_intensities.txt").write_text(table)
  (tmp_path / "dynamics").mkdir()
  (tmp_path / "dynamics" / f"{VID}_delta_adjusted_27.txt").write_text(table)
  (tmp_path / "dynamics" / f"{VID}_something_else.txt").write_text(table)  # unknown variant: skipped
  vec = rng.normal(size=pkg.CROSS_AU_LENGTH)
  (tmp_path / "features" / "cross-AU whole sequence").mkdir(parents=True)
  (tmp_path / "features" / "cross-AU whole sequence" / f"{VID}.txt").write_text(
    ",".join(repr(float(x)) for x in vec) + "\n"
  )
  (tmp_path / "features" / "sliding 13").mkdir()  # unknown kind: skipped
  v = pkg.read_auda_package(tmp_path)[VID]
  np.testing.assert_array_equal(v.au_TxA, au)
  assert list(v.dynamics) == ["delta_adjusted_27"]
  np.testing.assert_array_equal(v.dynamics["delta_adjusted_27"], au)
  np.testing.assert_array_equal(v.cross_au["whole_sequence"], vec)
  assert v.si_T is None and v.au_wise == {}


def test_reference_si_file_in_a_package(tmp_path):
  src = shared_path("data", "auda_reference", f"{VID}_smile_intensities.txt")
  (tmp_path / "smile_intensities").mkdir()
  shutil.copy(src, tmp_path / "smile_intensities" / src.name)
  v = pkg.read_auda_package(tmp_path)[VID]
  assert v.si_T.shape == (104,) and v.au_TxA is None


def test_errors(tmp_path):
  pkg.write_auda_package(tmp_path, {VID: _video()})
  au_file = tmp_path / "action_units" / f"{VID}_action_units.txt"
  lines = au_file.read_text().splitlines()
  j = lines[0].split(",").index("AU12")
  au_file.write_text("\n".join(",".join(c for i, c in enumerate(row.split(",")) if i != j) for row in lines) + "\n")
  raises_input_error(lambda: pkg.read_auda_package(tmp_path), str(au_file), "AU12")

  pkg.write_auda_package(tmp_path, {VID: _video()})
  feat = tmp_path / "features" / "cross-AU_apex" / f"{VID}.txt"
  feat.write_text(",".join(["1.0"] * 100) + "\n")
  raises_input_error(lambda: pkg.read_auda_package(tmp_path), str(feat), "100 values, expected 1088")
  feat.write_text(",".join(["1.0"] * 1087 + ["x"]) + "\n")
  raises_input_error(lambda: pkg.read_auda_package(tmp_path), str(feat), "'x'")

  pkg.write_auda_package(tmp_path, {VID: _video()})
  raises_input_error(lambda: pkg.read_auda_package(tmp_path, ids=["003_deliberate_smile_1"]), "003_deliberate_smile_1")
  si = tmp_path / "smile_intensities" / f"{VID}_smile_intensities.txt"
  si.write_text("0.1\n" * 5)
  raises_input_error(lambda: pkg.read_auda_package(tmp_path), VID, "5 values")
  raises_input_error(lambda: pkg.read_auda_package(tmp_path / "absent"), "absent")


def test_writer_refuses_bad_shapes(tmp_path):
  with pytest.raises(ValueError):
    pkg.write_auda_package(tmp_path, {VID: pkg.AudaPackageVideo(id=VID, au_wise={"onset": np.zeros(5)})})
  with pytest.raises(ValueError):
    pkg.write_auda_package(tmp_path, {VID: pkg.AudaPackageVideo(id=VID, au_TxA=np.zeros((3, 16)))})


def test_package_to_corpus_writes_readable_corpus_and_refuses_bad_input(tmp_path):
  from smilejax import data as data_lib
  from smilejax.io import nemo, openface

  ids = ["001_deliberate_smile_2", "002_spontaneous_smile_1", "003_deliberate_smile_1", "004_spontaneous_smile_3"]
  videos = {v: _video(v, t=40 + i, seed=i) for i, v in enumerate(ids)}
  pkg.write_auda_package(tmp_path / "pkg", videos)
  folds = {1: ids[:2], 2: ids[2:]}
  out = pkg.package_to_corpus(tmp_path / "pkg", tmp_path / "corpus", folds=folds)
  assert nemo.read_fold_lists(out / "folds") == {1: sorted(ids[:2]), 2: sorted(ids[2:])}
  series = openface.read_openface_csv(out / "openface" / f"{ids[1]}.csv")
  np.testing.assert_allclose(series.au_TxA, videos[ids[1]].au_TxA, atol=5e-7)  # unclipped, 6 decimals
  assert series.fps == pytest.approx(50.0)
  corpus = data_lib.load_corpus(out, with_frames=False, use_cache=False, progress=False)
  assert sorted(corpus.videos) == sorted(ids)
  np.testing.assert_allclose(corpus.videos[ids[3]].si_T, videos[ids[3]].si_T, atol=5e-7)

  with pytest.raises(InputError, match="corpus: exists"):
    pkg.package_to_corpus(tmp_path / "pkg", tmp_path / "corpus", folds=folds)
  with pytest.raises(InputError, match="fold\\(s\\) \\[3\\] have no video"):
    pkg.package_to_corpus(tmp_path / "pkg", tmp_path / "c2", folds={**folds, 3: []})
  with pytest.raises(InputError, match="no action-unit table for 1 fold-list id\\(s\\): 005_deliberate_smile_1"):
    pkg.package_to_corpus(tmp_path / "pkg", tmp_path / "c4", folds={**folds, 3: ["005_deliberate_smile_1"]})
  (tmp_path / "pkg" / "smile_intensities" / f"{ids[0]}_smile_intensities.txt").unlink()
  with pytest.raises(InputError, match=f"no smile-intensity file for 1 id\\(s\\): {ids[0]}"):
    pkg.package_to_corpus(tmp_path / "pkg", tmp_path / "c3", folds=folds)
  assert not any((tmp_path / c).exists() for c in ("c2", "c3", "c4"))


def test_bin_import_auda_package_reports_a_missing_package_in_one_line(tmp_path):
  import subprocess
  import sys

  script = Path(__file__).resolve().parents[1] / "bin" / "import_auda_package"
  proc = subprocess.run(
    [sys.executable, str(script), f"--package={tmp_path / 'nope'}", f"--out={tmp_path / 'c'}"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope'}: AUDA package folder not found"
  assert not (tmp_path / "c").exists()
