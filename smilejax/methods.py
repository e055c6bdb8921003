"""The six methods of the paper's Table 1: ids, labels, what each model reads, and the late-fusion members.

The one home of these facts: the experiment, the report, the explanation and the configs all read them here.
Members are concatenated in the order given (realsmilenet.md §7: 250 + 150 + 150 + 150 final-branch features).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of Table 1.

  id: key in configs (``models.<id>``), workdirs and result files. label: the paper's row name.
  inputs: what a base model reads ("frames": 48x48 video frames; "framewise": the 154 frame-wise AUDA features at
  the frames' indices; "auwise": 4 x 119; "crossau": 4 x 1088), "" for a fusion.
  members: for a late fusion, the base methods whose final-branch features it concatenates.
  """

  id: str
  label: str
  inputs: str = ""
  members: tuple[str, ...] = ()

  @property
  def is_fusion(self) -> bool:
    return bool(self.members)

  @property
  def needs_video(self) -> bool:
    return self.inputs == "frames" or "realsmilenet" in self.members


TABLE1: tuple[Method, ...] = (
  Method("realsmilenet", "RealSmileNet", inputs="frames"),
  Method("framewise", "AUDA (frame-wise)", inputs="framewise"),
  Method("auwise", "AUDA (AU-wise)", inputs="auwise"),
  Method("crossau", "AUDA (cross-AU)", inputs="crossau"),
  Method("fusion_auda", "Fusion of AUDA features", members=("framewise", "auwise", "crossau")),
  Method("fusion_all", "Fusion of all features", members=("realsmilenet", "framewise", "auwise", "crossau")),
)
BY_ID: dict[str, Method] = {m.id: m for m in TABLE1}

METHODS: tuple[str, ...] = tuple(m.id for m in TABLE1)
METHOD_NAMES: dict[str, str] = {m.id: m.label for m in TABLE1}
BASE_METHODS: tuple[str, ...] = tuple(m.id for m in TABLE1 if not m.is_fusion)
FUSION_METHODS: tuple[str, ...] = tuple(m.id for m in TABLE1 if m.is_fusion)
AUDA_METHODS: tuple[str, ...] = tuple(m.id for m in TABLE1 if m.inputs in ("framewise", "auwise", "crossau"))
FUSION_MEMBERS: dict[str, tuple[str, ...]] = {m.id: m.members for m in TABLE1 if m.is_fusion}


def method_index(method: str) -> int:
  """Position of ``method`` in Table 1 (part of each model's seed)."""
  return METHODS.index(method)
