"""bin/assess (smilejax.assess) on the real clips of ../shared with a tiny fold trained here on the synthetic corpus:
every method's probability, the phases in seconds, the AUs per AUDA model, the PNG, both warnings (synthetic
training; OpenFace-trained models scored on MediaPipe AUs), --json, the CSV path, and the one-line errors."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path

from smilejax import assess, experiment, explain
from smilejax import workdir as workdir_lib
from smilejax.errors import InputError
from smilejax.face import aus, model
from smilejax.methods import METHODS

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin" / "assess"


@pytest.fixture(scope="module")
def workdir(tiny_corpus, tmp_path_factory):
  """Fold 1 of the tiny config (configs/test.py), every method, one epoch, timing off."""
  c = runpy.run_path(str(REPO / "configs" / "test.py"))["get_config"]()
  c.data.synthetic_dir = str(tiny_corpus)
  c.folds = (1,)
  c.train.epochs = 1
  for name in c.methods:
    c.models[name].epochs = 1
  c.timing.enabled = False
  wd = tmp_path_factory.mktemp("wd")
  experiment.check_workdir(c, wd, folds=[1])
  experiment.run_fold(c, wd, 1)
  return wd


@pytest.fixture(scope="module")
def single_face():
  return shared_path("data", "real", "single_face.mp4")


def _run(*args):
  return subprocess.run([sys.executable, str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_assess_single_face_prints_probabilities_phases_aus_and_png(workdir, single_face, tmp_path):
  png = tmp_path / "out.png"
  r = _run(single_face, f"--workdir={workdir}", f"--out_png={png}")
  assert r.returncode == 0, r.stderr[-2000:]
  out = r.stdout
  for m in METHODS:
    assert any(line.split()[:1] == [m] for line in out.splitlines()), (m, out)
  assert "decision (fusion_all):" in out
  assert "onset" in out and "apex" in out and "offset" in out and " s" in out
  assert "gradient x input" in out
  for m in ("framewise", "auwise", "crossau"):
    assert f"  {m} " in out and "AU" in out
  assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
  assert any("synthetic corpus" in w and "demonstration, not a judgement" in w for w in warnings), r.stderr
  assert any("trained on openface AUs, these are mediapipe AUs" in w for w in warnings), r.stderr


def test_assess_json_and_the_openface_csv_path(workdir, tmp_path):
  """--json parses; with a test video's own CSV and SI file (OpenFace source) there is no AU-source warning and the
  probabilities are those the experiment recorded."""
  fold = workdir_lib.fold_dir(workdir, 1)
  inputs = explain.fold_test_video(fold)
  r = _run(
    inputs["video"],
    f"--workdir={workdir}",
    "--fold=1",
    f"--openface_csv={inputs['openface_csv']}",
    f"--si_file={inputs['si_file']}",
    "--json",
    f"--out_png={tmp_path / 'x.png'}",
  )
  assert r.returncode == 0, r.stderr[-2000:]
  d = json.loads(r.stdout)
  assert d["au_source"] == "openface" and d["dataset"] == "synthetic"
  assert set(d["p_spontaneous"]) == set(METHODS)
  for m, p in d["p_spontaneous"].items():
    assert abs(p - inputs["predictions"][m]) <= 2e-6, (m, p, inputs["predictions"][m])
  assert d["decision"]["method"] == "fusion_all" and d["decision"]["label"] in ("posed", "spontaneous")
  assert set(d["top_aus"]) == {"framewise", "auwise", "crossau"}
  assert not any("AUs, these are" in w for w in d["warnings"])
  assert any("synthetic" in w for w in d["warnings"])
  if not d["no_smile_detected"]:
    assert d["phases"]["apex"]["end_s"] > d["phases"]["apex"]["start_s"]


def test_no_face_exits_1_with_one_line(workdir):
  r = _run(shared_path("data", "real", "no_face.mp4"), f"--workdir={workdir}")
  assert r.returncode == 1
  errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "no face found in" in errors[0] and "no_face.mp4" in errors[0], r.stderr


def test_missing_workdir_and_unfinished_fold(workdir, single_face, tmp_path):
  with pytest.raises(InputError, match="no such workdir"):
    assess.resolve_fold(tmp_path / "nope")
  with pytest.raises(InputError, match="fold 3 is not finished"):
    assess.resolve_fold(workdir, 3)
  with pytest.raises(InputError, match="no finished fold"):
    assess.resolve_fold(tmp_path)
  assert assess.resolve_fold(workdir) == workdir_lib.fold_dir(workdir, 1)
  r = _run(single_face, f"--workdir={tmp_path / 'nope'}")
  assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error:") and "no such workdir" in r.stderr


def test_extract_aus_csv_path_uses_the_crops(workdir, single_face, tmp_path):
  """A bin/extract_aus output given as --openface_csv/--si_file: its sidecar names the AU source (mediapipe) and
  RealSmileNet sees the stored crops, so its probability is the one of the direct front-end path."""
  model_path = model.find_model()
  aus.extract_video(single_face, tmp_path, "clip", model_path=model_path, model_sha256=model.sha256(model_path))
  via_csv = assess.assess_video(
    single_face,
    workdir,
    openface_csv=tmp_path / "openface" / "clip.csv",
    si_file=tmp_path / "smile_intensities" / "clip_smile_intensities.txt",
  )
  direct = assess.assess_video(single_face, workdir)
  assert via_csv.au_source == direct.au_source == "mediapipe"
  assert set(via_csv.explanation.probabilities) == set(METHODS)
  p_csv, p_direct = via_csv.explanation.probabilities, direct.explanation.probabilities
  assert abs(p_csv["realsmilenet"] - p_direct["realsmilenet"]) <= 1e-5, (p_csv, p_direct)
  assert via_csv.phases.keys() == direct.phases.keys()
