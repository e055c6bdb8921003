"""The bin/ programs run as commands (subprocesses): exit status, files written and messages.

The session's tiny synthetic corpus (conftest's ``tiny_corpus``) serves the module. The fold runs train the two AUDA
vector models only (AU-wise and cross-AU, 2 epochs each, a few seconds) without per-video timing. Bad input must end with exit
status 1, exactly one "error: ..." line on stderr, no traceback, and nothing written.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "configs" / "test.py"
ENV = dict(os.environ, SMILEJAX_NO_REEXEC="1")
# The runs: fold 1 of the tiny config, AU-wise and cross-AU only, no timing, no persistent compile cache.
RUN_FLAGS = ("--compile_cache=", "--config.timing.enabled=False", "--config.methods=('auwise','crossau')")


def _cmd(program: str, *args) -> list[str]:
  return [sys.executable, str(REPO / "bin" / program), *(str(a) for a in args)]


def _run(cwd: Path, program: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
  return subprocess.run(_cmd(program, *args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory, tiny_corpus) -> Path:
  """The commands' working folder; tiny/ in it links to the session's tiny corpus."""
  root = tmp_path_factory.mktemp("cli")
  (root / "tiny").symlink_to(tiny_corpus, target_is_directory=True)
  return root


def test_make_corpus_leaves_a_complete_corpus_as_it_is(cli_dir):
  before = sorted((p.name, p.stat().st_mtime_ns) for p in (cli_dir / "tiny").iterdir())
  proc = _run(cli_dir, "make_corpus", f"--out={cli_dir / 'tiny'}", "--size=tiny", "--seed=0")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] in (str(cli_dir / "tiny"), str(cli_dir.joinpath("tiny").resolve()))
  assert sorted((p.name, p.stat().st_mtime_ns) for p in (cli_dir / "tiny").iterdir()) == before


def _fold_args(cli_dir: Path, workdir: Path) -> list[str]:
  return [
    f"--config={TEST_CONFIG}",
    f"--config.data.synthetic_dir={cli_dir / 'tiny'}",
    *RUN_FLAGS,
    f"--workdir={workdir}",
  ]


@pytest.fixture(scope="module")
def reference(cli_dir):
  """bin/run_fold --fold=1, uninterrupted: (process, workdir)."""
  workdir = cli_dir / "reference"
  return _run(cli_dir, "run_fold", *_fold_args(cli_dir, workdir), "--fold=1"), workdir


def test_run_fold_trains_the_fold_and_writes_its_files(reference):
  proc, workdir = reference
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr and not re.search(r"^error:", proc.stderr, re.M)
  assert "AUDA (AU-wise)" in proc.stdout and "AUDA (cross-AU)" in proc.stdout
  fdir = workdir / "fold_01"
  for path in ("fold_result.json", "predictions.csv", "auwise/metrics.jsonl", "crossau/checkpoints"):
    assert (fdir / path).exists(), path
  assert (workdir / "config.json").is_file()
  header = (fdir / "predictions.csv").read_text().splitlines()[0]
  assert header == "id,subject,label,fold,auwise,crossau"


def test_sigkill_mid_training_then_rerun_gives_identical_predictions(cli_dir, reference):
  workdir = cli_dir / "killed"
  metrics = workdir / "fold_01" / "auwise" / "metrics.jsonl"
  with open(cli_dir / "killed.log", "w") as log:
    proc = subprocess.Popen(
      _cmd("run_fold", *_fold_args(cli_dir, workdir), "--fold=1"), cwd=cli_dir, env=ENV, stdout=log, stderr=log
    )
    try:
      deadline = time.monotonic() + 240
      while not (metrics.is_file() and metrics.read_text().strip()):  # the first epoch is checkpointed and logged
        assert proc.poll() is None, "bin/run_fold ended before its first epoch"
        assert time.monotonic() < deadline, "no epoch within 240 s"
        time.sleep(0.02)
      os.kill(proc.pid, signal.SIGKILL)
    finally:
      proc.kill()
      proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  assert not (workdir / "fold_01" / "fold_result.json").exists(), "killed after the fold finished: nothing tested"

  rerun = _run(cli_dir, "run_fold", *_fold_args(cli_dir, workdir), "--fold=1")
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert re.search(r"auwise: resuming after epoch [12] of 2", rerun.stderr)
  ref = reference[1] / "fold_01" / "predictions.csv"
  assert (workdir / "fold_01" / "predictions.csv").read_bytes() == ref.read_bytes()


# Bad input: (program, arguments, the one error line (a regex), a path the command must not create). "{d}" is the
# module's folder, "{csv}" one of the corpus's OpenFace CSVs, "{run}" the fold-run arguments with workdir {d}/wd_<case>.
BAD_INPUT = {
  "config file missing": (
    "run_fold",
    ["--config={d}/no_such_config.py", "--fold=1", "--workdir={d}/wd_missing_config"],
    r"--config=\S*no_such_config\.py: no such config file",
    "wd_missing_config",
  ),
  "unknown config key": (
    "run_fold",
    ["{run}", "--config.no_such_key=1", "--fold=1"],
    r"--config\.no_such_key: unknown config key: the config has no field 'no_such_key' \(\S*test\.py\)",
    "wd_unknown_config_key",
  ),
  "batch size 0": (
    "run_fold",
    ["{run}", "--config.train.batch_size=0", "--fold=1"],
    r"config train\.batch_size: must be an integer >= 1, got 0",
    "wd_batch_size_0",
  ),
  "val_fraction 1.5": (
    "run_fold",
    ["{run}", "--config.train.val_fraction=1.5", "--fold=1"],
    r"config train\.val_fraction: must be a finite number in \(0, 1\), got 1\.5",
    "wd_val_fraction_1.5",
  ),
  "workdir is a file": (
    "run_fold",
    ["{run}", "--workdir={d}/a_file", "--fold=1"],
    r"\S*a_file: not a folder \(the workdir must be a folder or not exist yet\)",
    "a_file/config.json",
  ),
  "fold 11": ("run_fold", ["{run}", "--fold=11"], r"\S*tiny/folds: no fold 11 \(folds 1-10\)", "wd_fold_11"),
  "folds not integers": (
    "run_all_folds",
    ["{run}", "--folds=1,x"],
    r"--folds=1,x: fold numbers must be integers, e\.g\. --folds=1,2,5",
    "wd_folds_not_integers",
  ),
  "folds unknown": (
    "run_all_folds",
    ["{run}", "--folds=0,11"],
    r"\S*tiny/folds: no fold 0,11 \(folds 1-10\)",
    "wd_folds_unknown",
  ),
  "CSV missing": (
    "extract_features",
    ["--compile_cache=", "--openface_csv={d}/missing.csv", "--si_proxy=AU12", "--out={d}/missing.npz"],
    r"\S*missing\.csv: OpenFace CSV not found",
    "missing.npz",
  ),
  "si_proxy AU99": (
    "extract_features",
    ["--compile_cache=", "--openface_csv={csv}", "--si_proxy=AU99", "--out={d}/au99.npz"],
    r"--si_proxy=AU99: must be one of AU01, AU02, .*, AU45 \(e\.g\. AU12\)",
    "au99.npz",
  ),
  "output exists": (
    "extract_features",
    ["--compile_cache=", "--openface_csv={csv}", "--si_proxy=AU12", "--out={d}/done.npz"],
    r"\S*done\.npz: exists \(a finished extraction\); use --overwrite to replace it",
    "",
  ),
  "corpus folder is a file": (
    "make_corpus",
    ["--out={d}/a_file", "--size=tiny"],
    r"\S*a_file: exists and is not a folder",
    "",
  ),
  "package missing": (
    "import_auda_package",
    ["--package={d}/no_package", "--out={d}/imported"],
    r"\S*no_package: AUDA package folder not found",
    "imported",
  ),
}


@pytest.fixture(scope="module")
def bad_runs(cli_dir) -> dict[str, subprocess.CompletedProcess]:
  """Every BAD_INPUT case, run two at a time (most of each run is Python and JAX starting)."""
  (cli_dir / "a_file").write_text("not a folder\n")
  (cli_dir / "done.npz").write_bytes(b"a finished extraction\n")
  csv = sorted((cli_dir / "tiny" / "openface").glob("*.csv"))[0]

  def args(case: str) -> list[str]:
    slug = re.sub(r"\W+", "_", case)
    out = []
    for a in BAD_INPUT[case][1]:
      if a == "{run}":
        out += _fold_args(cli_dir, cli_dir / f"wd_{slug}")
      else:
        out.append(a.format(d=cli_dir, csv=csv))
    return out

  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {case: pool.submit(_run, cli_dir, BAD_INPUT[case][0], *args(case)) for case in BAD_INPUT}
    return {case: f.result() for case, f in futures.items()}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_error_line_exit_1_and_writes_nothing(cli_dir, bad_runs, case):
  program, _, expected, not_written = BAD_INPUT[case]
  proc = bad_runs[case]
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert re.fullmatch(f"error: {expected}", errors[0]), errors[0]
  if not_written:
    assert not (cli_dir / not_written).exists(), f"{program} wrote {not_written}"
