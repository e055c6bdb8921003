"""Import the weights of the official PyTorch RealSmileNet (``org``) into :class:`RealSmileNet` (spec
``realsmilenet.md`` §1-§3; the layout rule is §2 "Layout").

Keys: [O]'s ``DeepSmileNet(re="org")`` state_dict (Yan98/Deep-learning-for-genuine-and-posed-smile-classification,
``model.py``; ``benchmarks/torch_org.py`` has the same names), an ``nn.DataParallel`` prefix ``module.`` accepted.
No torch needed: pass arrays, e.g. ``{k: v.numpy() for k, v in torch.load(path).items()}``.

Layout: [O]'s images are (C, W, H) and its kernels (out, in, k_W, k_H) over them; the port is NHWC with HWIO
kernels. So every k x k kernel maps as ours[p, q, i, o] = torch[o, i, q, p] (numpy ``transpose(3, 2, 1, 0)``), and
the classifier's 250 inputs, flattened over (C, W, H) = (10, 5, 5) by PyTorch and over (H, W, C) here, as
ours_kernel[(h * 5 + w) * 10 + c, 0] = torch_weight[0, (c * 5 + w) * 5 + h]. The rest is position-free (the
non-local sums, the pools and the 2x2 'VALID' conv commute with the transposition). BatchNorm: weight, bias,
running_mean, running_var -> scale, bias, mean, var (``num_batches_tracked`` unused: the momentum is fixed, as
[O]'s). ConvLSTM: input channels first, then hidden, gate order [i, f, o, g], in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from smilejax.errors import InputError

# Our path (tuple) -> [O]'s module prefix, per layer kind.
_CONVS = {
  ("ta", "conv"): ("TA.conv", 3, 3, 3),
  ("encoder", "conv1"): ("encoder.1.conv", 4, 3, 3),
  ("encoder", "conv2"): ("encoder.3.conv", 6, 4, 3),
  ("convlstm",): ("decoder.cell.conv", 32, 14, 3),
  ("nonlocal", "theta"): ("pool.0.theta", 4, 8, 1),
  ("nonlocal", "phi"): ("pool.0.phi.0", 4, 8, 1),
  ("nonlocal", "g"): ("pool.0.g.0", 4, 8, 1),
  ("nonlocal", "w"): ("pool.0.W.0", 8, 4, 1),
  ("final_conv",): ("pool.2.conv", 10, 8, 2),
}
_BNS = {
  ("encoder", "bn0"): ("encoder.0", 3),
  ("encoder", "bn1"): ("encoder.1.bn", 4),
  ("encoder", "bn2"): ("encoder.3.bn", 6),
  ("nonlocal", "bn"): ("pool.0.W.1", 8),
  ("final_bn",): ("pool.2.bn", 10),
}
_CLASSIFIER = "pool.5"
_FINAL_CWH = (10, 5, 5)  # the classifier input as PyTorch flattens it: (C, W, H)

TORCH_KEYS: tuple[str, ...] = tuple(
  [f"{p}.{leaf}" for p, *_ in _CONVS.values() for leaf in ("weight", "bias")]
  + [f"{p}.{leaf}" for p, _ in _BNS.values() for leaf in ("weight", "bias", "running_mean", "running_var")]
  + [f"{_CLASSIFIER}.weight", f"{_CLASSIFIER}.bias"]
)
"""Every state_dict entry the import reads (``num_batches_tracked`` entries may be present and are ignored)."""


def _set(tree: dict, path: tuple[str, ...], leaf: str, value: np.ndarray) -> None:
  for k in path:
    tree = tree.setdefault(k, {})
  tree[leaf] = value


def realsmilenet_variables_from_torch(state_dict: Mapping[str, Any], *, source: str = "state_dict") -> dict:
  """``{"params": ..., "batch_stats": ...}`` for :class:`smilejax.models.RealSmileNet` (default sizes) from the
  ``state_dict`` of [O]'s ``org`` model, given as arrays (numpy, or anything ``np.asarray`` takes).

  Raises :class:`InputError` (one line, naming ``source`` and the key) for a missing key, a key of the wrong shape
  or a non-finite value, and for keys this mapping does not know (a different model variant), so that nothing is
  silently left at its initial value or dropped.
  """
  sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}

  def get(key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in sd:
      raise InputError(f"{source}: missing key {key!r} (expected the official RealSmileNet 'org' state_dict)")
    a = np.asarray(sd[key], dtype=np.float32)
    if a.shape != shape:
      raise InputError(f"{source}: key {key!r} has shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
      raise InputError(f"{source}: key {key!r} holds non-finite values")
    return a

  unknown = sorted(k for k in sd if k not in TORCH_KEYS and not k.endswith(".num_batches_tracked"))
  if unknown:
    raise InputError(f"{source}: unexpected key(s) {', '.join(map(repr, unknown))} (not the 'org' model?)")

  params: dict = {}
  stats: dict = {}
  for path, (prefix, c_out, c_in, k) in _CONVS.items():
    w = get(f"{prefix}.weight", (c_out, c_in, k, k))
    _set(params, path, "kernel", np.ascontiguousarray(w.transpose(3, 2, 1, 0)))  # (o, i, W, H) -> (H, W, i, o)
    _set(params, path, "bias", get(f"{prefix}.bias", (c_out,)))
  for path, (prefix, c) in _BNS.items():
    _set(params, path, "scale", get(f"{prefix}.weight", (c,)))
    _set(params, path, "bias", get(f"{prefix}.bias", (c,)))
    _set(stats, path, "mean", get(f"{prefix}.running_mean", (c,)))
    var = get(f"{prefix}.running_var", (c,))
    if np.any(var < 0):
      raise InputError(f"{source}: key {prefix + '.running_var'!r} has negative values")
    _set(stats, path, "var", var)
  n = int(np.prod(_FINAL_CWH))
  w = get(f"{_CLASSIFIER}.weight", (1, n)).reshape(1, *_FINAL_CWH)  # (out, C, W, H)
  params["classifier"] = {
    "kernel": np.ascontiguousarray(w.transpose(3, 2, 1, 0).reshape(n, 1)),  # (H, W, C) x out
    "bias": get(f"{_CLASSIFIER}.bias", (1,)),
  }
  return {"params": params, "batch_stats": stats}
