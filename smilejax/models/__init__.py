"""smilejax models (spec ``realsmilenet.md`` §3, §7): Flax Linen modules with one interface,

    logit_B, feats_BxF = model.apply(variables, x, lengths_B, train=..., rngs=..., mutable=...)

``logit`` is a logit (probability = sigmoid(logit)), ``feats`` the final-branch features that late fusion
concatenates. Collections ``params`` and ``batch_stats`` (mutable in training; FusionHead has none); rng stream
``dropout`` in training.

=================  =================  ====================================  =====
name               module             x                                     F
=================  =================  ====================================  =====
``realsmilenet``   RealSmileNet       frames B x T x 48 x 48 x 3 in [0, 1]  250
``framewise``      FrameWiseNet       features B x T x 154                  150
``auwise``         VectorNet          features B x 476 (lengths ignored)    150
``crossau``        VectorNet          features B x 4352 (lengths ignored)   150
``fusion``         FusionHead         features B x F_total (700 or 450)     F_total
=================  =================  ====================================  =====
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from smilejax.models.auda_nets import FrameWiseNet, MaskedLSTM, VectorNet
from smilejax.models.fusion import FusionHead
from smilejax.models.layers import MaskedBatchNorm, safe_l2_norm
from smilejax.models.realsmilenet import RealSmileNet

__all__ = [
  "MODELS",
  "FrameWiseNet",
  "FusionHead",
  "MaskedBatchNorm",
  "MaskedLSTM",
  "RealSmileNet",
  "VectorNet",
  "build",
  "build_from_config",
  "count_params",
  "model_fields",
  "safe_l2_norm",
]

MODELS: dict[str, type[nn.Module]] = {
  "realsmilenet": RealSmileNet,
  "framewise": FrameWiseNet,
  "auwise": VectorNet,
  "crossau": VectorNet,
  "fusion": FusionHead,
}

_FLAX_FIELDS = {"parent", "name"}


def model_fields(name: str) -> tuple[str, ...]:
  """The configurable hyper-parameters (dataclass fields) of model ``name``."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
  return tuple(f.name for f in dataclasses.fields(MODELS[name]) if f.init and f.name not in _FLAX_FIELDS)


def _as_dict(config: Any) -> dict[str, Any]:
  if config is None:
    return {}
  if hasattr(config, "to_dict"):  # ml_collections.ConfigDict
    return dict(config.to_dict())
  if isinstance(config, Mapping):
    return dict(config)
  raise TypeError(f"model config must be a mapping or ConfigDict, got {type(config).__name__}")


def _norm(value: Any) -> Any:
  return tuple(value) if isinstance(value, list) else value  # module fields must be hashable


def build(name: str, config: Any = None, **overrides: Any) -> nn.Module:
  """Model ``name`` (see the table above) with hyper-parameters from ``config`` then ``overrides``.

  ``config`` (mapping or ConfigDict, optional) may hold other keys too (e.g. ``name``, training settings): only the
  model's own fields are taken from it. ``overrides`` must all be fields of the model (a typo raises ValueError).
  """
  fields = model_fields(name)
  unknown = sorted(set(overrides) - set(fields))
  if unknown:
    raise ValueError(f"model {name!r} has no option(s) {unknown}; options: {list(fields)}")
  kwargs = {k: _norm(v) for k, v in _as_dict(config).items() if k in fields}
  kwargs.update({k: _norm(v) for k, v in overrides.items()})
  return MODELS[name](**kwargs)


def build_from_config(model_cfg: Any) -> nn.Module:
  """``build(model_cfg.name, model_cfg)``: ``model_cfg`` holds ``name`` and any of the model's fields."""
  cfg = _as_dict(model_cfg)
  if "name" not in cfg:
    raise ValueError(f"model config has no 'name' (one of {sorted(MODELS)}): keys {sorted(cfg)}")
  return build(cfg["name"], cfg)


def count_params(params: Any) -> int:
  """Total number of scalar entries in a pytree (e.g. ``variables['params']`` or ``variables['batch_stats']``)."""
  return int(sum(np.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params)))
