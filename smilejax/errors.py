"""Errors shared by every part of smilejax.

Contract (../shared/spec/architecture.md, "Readers"): every bad-input error raised by a reader, the dataset or the
AUDA code is an :class:`InputError` whose message is ONE line naming the file (or video id) and the problem, so the
``bin/`` entry points can print ``error: <message>`` and exit 1.
"""


class InputError(ValueError):
  """Bad input (a file or a video id): one line that names the file and says what is wrong."""

  def __init__(self, message: str):
    # One line, always: the entry points print it after "error: ".
    super().__init__(" ".join(str(message).split()))
