"""The paper's Table 1 (auda.md §13; UvA-NEMO, 10 folds; times for a whole video on an RTX 2080) and its fold
numbering.

The paper numbers its folds shifted by one against the official UvA-NEMO lists (``P_fold_all_k.txt`` ∪
``S_fold_all_k.txt``): paper fold k = list k+1 for k = 1..9, paper fold 10 = list 1 (inferred from the test-set
sizes, auda.md §13). ``PAPER_TABLE1``'s per-fold numbers are in the paper's numbering.
"""

from __future__ import annotations

import dataclasses

from smilejax import constants


@dataclasses.dataclass(frozen=True)
class PaperRow:
  ms: float  # whole-video processing time, RTX 2080
  folds: tuple[float, ...]  # accuracy % for paper folds 1..10
  mean: float  # as printed
  std: float  # as printed (sample std, ddof = 1)


PAPER_TABLE1: dict[str, PaperRow] = {
  "realsmilenet": PaperRow(65.1, (73.8, 72.0, 75.6, 72.8, 76.8, 75.0, 75.2, 72.8, 72.8, 77.4), 74.4, 1.9),
  "framewise": PaperRow(2.3, (77.8, 72.8, 82.7, 72.0, 84.0, 81.5, 75.2, 73.7, 75.2, 79.8), 77.5, 4.3),
  "auwise": PaperRow(11.3, (84.9, 80.0, 81.9, 83.2, 78.4, 82.3, 77.6, 76.3, 76.8, 79.8), 80.1, 2.9),
  "crossau": PaperRow(81.8, (81.8, 73.6, 83.5, 84.0, 76.0, 82.3, 76.8, 73.7, 80.0, 82.3), 79.4, 4.0),
  "fusion_auda": PaperRow(98.2, (81.8, 77.6, 82.7, 82.4, 80.8, 79.0, 79.2, 78.1, 80.0, 83.9), 80.5, 2.1),
  "fusion_all": PaperRow(164.5, (81.8, 79.2, 85.8, 84.0, 83.2, 82.3, 76.8, 78.1, 84.0, 83.1), 81.8, 2.9),
}
PAPER_BACKEND = "RTX 2080 (whole video)"
FOLD_MAPPING_NOTE = (
  "paper fold k = official list k+1 for k = 1..9, paper fold 10 = list 1 "
  "(inferred from the test-set sizes; auda.md §13)"
)


def paper_fold_to_list_fold(paper_fold: int) -> int:
  """Official UvA-NEMO list number of the paper's fold `paper_fold` (1..10): k -> k+1 (k <= 9), 10 -> 1."""
  if not 1 <= paper_fold <= constants.NUM_FOLDS:
    raise ValueError(f"paper fold must be in 1..{constants.NUM_FOLDS}, got {paper_fold}")
  return paper_fold % constants.NUM_FOLDS + 1


def list_fold_to_paper_fold(list_fold: int) -> int:
  """Inverse of `paper_fold_to_list_fold`: list k -> paper k-1 (k >= 2), list 1 -> paper 10."""
  if not 1 <= list_fold <= constants.NUM_FOLDS:
    raise ValueError(f"list fold must be in 1..{constants.NUM_FOLDS}, got {list_fold}")
  return (list_fold - 2) % constants.NUM_FOLDS + 1


def paper_accuracy_by_list_fold(method: str) -> dict[int, float]:
  """The paper's per-fold accuracy (%) of `method`, keyed by OFFICIAL LIST fold number (1..10)."""
  row = PAPER_TABLE1[method]
  return {paper_fold_to_list_fold(k): row.folds[k - 1] for k in range(1, constants.NUM_FOLDS + 1)}
