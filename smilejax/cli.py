"""What the ``bin/`` programs share: bad input of any kind ends in one line on stderr, ``error: <file or flag>:
<problem>``, and exit status 1, never a traceback.

- ``define_config``: the ``--config`` flag (ml_collections). That flag reads the ``--config.<key>=<value>``
  overrides from sys.argv when it is defined (an unknown key raises there, at import) and reports a config file that
  does not exist only when the value is first read; so the file and the override keys are checked first.
- ``run``: ``absl.app.run`` with ``parse_flags`` (absl's own parse errors, a missing required flag, stray arguments:
  one line) and ``InputError`` / ``OSError`` from the program reported the same way.
"""

from __future__ import annotations

import difflib
import re
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from absl import app, flags
from ml_collections import config_flags

from smilejax.errors import InputError


def fail(message: str) -> NoReturn:
  """Print ``error: <message>`` as one line on stderr and exit with status 1."""
  print("error: " + " ".join(str(message).split()), file=sys.stderr)
  sys.exit(1)


def _exception_text(e: BaseException) -> str:
  return f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------------- the config


def _config_arg(argv: Sequence[str], name: str, default: str) -> str:
  """The value of ``--<name>=V`` / ``--<name> V`` in ``argv`` (the last one), else ``default``."""
  value = default
  for i, arg in enumerate(argv[1:], 1):
    if arg == "--":
      break
    if re.match(rf"^--?{re.escape(name)}=", arg):
      value = arg.split("=", 1)[1]
    elif re.match(rf"^--?{re.escape(name)}$", arg) and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def _override_keys(argv: Sequence[str], name: str) -> list[str]:
  """The dotted keys of the ``--<name>.<key>[=V]`` (and ``--no<name>.<key>``) overrides in ``argv``."""
  keys = []
  for arg in argv[1:]:
    if arg == "--":
      break
    m = re.match(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)", arg)
    if m:
      keys.append(m.group(1))
  return keys


def _missing_key(config: Any, key: str) -> str | None:
  """None when the dotted ``key`` names a field of ``config``; else the problem, with the nearest names."""
  node, done = config, []
  for part in key.split("."):
    if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
      node = node[int(part)]
    elif hasattr(node, "keys") and part in node:
      node = node[part]
    else:
      where = ".".join(done) or "the config"
      names = [str(k) for k in node.keys()] if hasattr(node, "keys") else []
      near = difflib.get_close_matches(part, names, n=3)
      return f"{where} has no field {part!r}" + (f" (did you mean {', '.join(near)}?)" if near else "")
    done.append(part)
  return None


def check_config_file(path: str, overrides: Sequence[str], *, name: str = "config") -> None:
  """Exit with one line when the config file ``path`` does not exist, does not load, or lacks an override key."""
  file, arg = Path(path).expanduser(), None
  if not file.is_file() and ":" in path and Path(path.split(":", 1)[0]).expanduser().is_file():
    file, arg = Path(path.split(":", 1)[0]).expanduser(), path.split(":", 1)[1]  # config_flags' "file:argument"
  if not file.exists():
    fail(f"--{name}={path}: no such config file")
  if not file.is_file():
    fail(f"--{name}={path}: not a file")
  try:
    get_config = runpy.run_path(str(file)).get("get_config")
  except Exception as e:  # noqa: BLE001 -- whatever the file raises: one line naming it
    fail(f"{file}: cannot load the config ({_exception_text(e)})")
  if not callable(get_config):
    fail(f"{file}: not a config file (defines no get_config())")
  try:
    config = get_config() if arg is None else get_config(arg)
  except Exception as e:  # noqa: BLE001
    fail(f"{file}: get_config() failed ({_exception_text(e)})")
  for key in overrides:
    problem = _missing_key(config, key)
    if problem:
      fail(f"--{name}.{key}: unknown config key: {problem} ({file})")


def define_config(default: str | Path, help_text: str, *, name: str = "config") -> Any:
  """``config_flags.DEFINE_config_file(name, default, help_text)``, after ``check_config_file`` on the command line's
  config file and overrides. Call it at import, where the bin/ programs define their flags."""
  check_config_file(_config_arg(sys.argv, name, str(default)), _override_keys(sys.argv, name), name=name)
  try:
    return config_flags.DEFINE_config_file(name, str(default), help_text)
  except Exception as e:  # noqa: BLE001 -- an override config_flags refuses: one line
    fail(f"--{name}: {_exception_text(e)}")


# ------------------------------------------------------------------------------------------------- flags and main


_REQUIRED_RE = re.compile(r"^flag --(\S+?)=None: Flag --\S+ must have a value other than None\.?$")
_FLAG_VALUE_RE = re.compile(r"^flag (--\S+?): (.*)$", re.S)


def _flag_error_line(e: Exception) -> str:
  text = " ".join(str(e).split())
  if isinstance(e, flags.UnrecognizedFlagError):
    return f"--{e.flagname}: unknown flag"
  m = _REQUIRED_RE.match(text)
  if m:
    return f"--{m.group(1)}: required flag not given"
  m = _FLAG_VALUE_RE.match(text)
  if m:
    return f"{m.group(1)}: {m.group(2)}"
  return text


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parser for ``app.run``: any parse error, and any argument that is not a flag, is one line and
  exit status 1."""
  try:
    rest = flags.FLAGS(list(argv))
  except flags.Error as e:
    fail(_flag_error_line(e))
  except Exception as e:  # noqa: BLE001 -- a config override config_flags cannot apply (type, key, file)
    fail(f"flags: {_exception_text(e)}")
  if len(rest) > 1:
    fail(f"{rest[1]}: unexpected argument (flags are written --name=value)")
  return rest


def config_value(holder: Any, *, name: str = "config") -> Any:
  """The parsed config of a ``define_config`` flag; a file that failed to load is one line."""
  try:
    return holder.value
  except Exception as e:  # noqa: BLE001 -- config_flags raises the load failure it deferred
    fail(f"--{name}: {_exception_text(e)}")


def _os_error_line(e: OSError) -> str:
  if e.filename is not None:
    return f"{e.filename}: {e.strerror or e}"
  return _exception_text(e)


def run(main: Callable[[list[str]], int | None]) -> None:
  """``app.run(main)`` with ``parse_flags``; an InputError or OSError out of ``main`` is one line, exit status 1."""

  def guarded(argv: list[str]) -> int | None:
    try:
      return main(argv)
    except InputError as e:
      fail(str(e))
    except OSError as e:
      fail(_os_error_line(e))

  app.run(guarded, flags_parser=parse_flags)
