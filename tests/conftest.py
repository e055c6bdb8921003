"""Test-session set-up: the CPU is presented to JAX as two devices (as bin/ does on a 2-core machine), so the
data-parallel training step is exercised; this must happen before any test starts JAX's backends. ``tiny_corpus``:
the synthetic tiny corpus, generated once per session for every module that trains on it.

``shared_path`` is the one way tests reach ../shared (the authors' reference vectors, real files and fold lists next
to the repository): a checkout without it skips those tests with the reason, but under CI (``CI=true``) a missing
reference fails, so a CI run never passes by skipping them."""

import os
from pathlib import Path

import pytest

from smilejax import runtime, synthetic
from smilejax.errors import InputError

runtime.configure_cpu_devices(2)

SHARED = Path(__file__).resolve().parents[2] / "shared"


def in_ci() -> bool:
  """Whether the CI environment variable is set to true (GitHub Actions, GitLab CI and most others set CI=true)."""
  return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def raises_input_error(fn, *names: str) -> str:
  """Call fn; it must raise InputError whose message is one line containing every string in ``names``."""
  with pytest.raises(InputError) as info:
    fn()
  msg = str(info.value)
  assert "\n" not in msg, msg
  for name in names:
    assert name in msg, f"{name!r} not in {msg!r}"
  return msg


def shared_path(*parts: str) -> Path:
  """SHARED / parts; when it does not exist: pytest.skip, or pytest.fail under CI."""
  path = SHARED.joinpath(*parts)
  if not path.exists():
    if in_ci():
      pytest.fail(f"shared reference data absent: {path} (CI=true: the reference must be there)", pytrace=False)
    pytest.skip(f"shared reference data absent: {path}")
  return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
  """The synthetic corpus of configs/test.py (size tiny, seed 0), generated once: set config.data.synthetic_dir to
  it (prepare finds it complete and does not generate it again)."""
  return synthetic.ensure_corpus(tmp_path_factory.mktemp("corpus") / "tiny", size="tiny", seed=0, progress=False)
