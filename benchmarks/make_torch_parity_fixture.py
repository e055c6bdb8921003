"""Write ``tests/data/realsmilenet_torch_parity.npz``: [O]'s ``org`` model in PyTorch, its weights and its
evaluation-mode outputs on a random input, for ``tests/test_torch_import.py`` (spec ``realsmilenet.md`` §2 "Layout").

Run with an interpreter that has PyTorch (never the project venv):

    /tmp/torchvenv/bin/python benchmarks/make_torch_parity_fixture.py [--out tests/data/realsmilenet_torch_parity.npz]

The model (``benchmarks/torch_org.py``) is built with a fixed seed; then every BatchNorm's running statistics and
affine parameters are moved away from their init (the non-local BN's gamma and beta too, which start at 0, so that
block is live), and the TA kernel gets noise on top of its centre init, so the test checks every part of the weight
mapping. Input: B = 2 videos of T = 7 frames, all real, random 8-bit pixels / 255 (as decoded frames; stored as
uint8 to keep the file small), drawn in the port's layout (B x T x H x W x C) and transposed to [O]'s
(B x T x C x W x H) for PyTorch.

File contents: ``sd/<state_dict key>`` (float32; ``num_batches_tracked`` left out), ``frames_u8_BxTxHxWxC``
(frames = frames_u8 / 255 in float32),
``lengths_B``, ``logit_B``, ``prob_B``, ``feats_torch_BxF`` (the 250 final-branch values in PyTorch's flatten order
over (C, W, H)); float64 outputs computed in float32 by PyTorch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_org import DeepSmileNet  # noqa: E402

B, T = 2, 7


def build_model(seed: int = 0) -> DeepSmileNet:
  torch.manual_seed(seed)
  model = DeepSmileNet()
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for name, mod in model.named_modules():
      if isinstance(mod, torch.nn.BatchNorm2d):
        c = mod.num_features
        mod.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
        mod.running_var.copy_(torch.exp(0.5 * torch.randn(c, generator=gen)))
        mod.weight.copy_(1.0 + 0.4 * torch.randn(c, generator=gen))
        mod.bias.copy_(0.3 * torch.randn(c, generator=gen))
        mod.num_batches_tracked.fill_(7)
    # Asymmetric noise on the TA kernel: its centre-only init is symmetric under the spatial transposition.
    model.TA.conv.weight.add_(0.2 * torch.randn(model.TA.conv.weight.shape, generator=gen))
    model.TA.conv.bias.add_(0.1 * torch.randn(3, generator=gen))
    model.pool[5].weight.mul_(4.0)  # larger logits: a wrong feature order moves them well past the tolerance
  return model.eval()


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument(
    "--out", default=str(Path(__file__).resolve().parents[1] / "tests/data/realsmilenet_torch_parity.npz")
  )
  args = ap.parse_args()

  model = build_model()
  assert sum(p.numel() for p in model.parameters()) == 5273
  rng = np.random.default_rng(0)
  frames_u8 = rng.integers(0, 256, (B, T, 48, 48, 3), dtype=np.uint8)  # the port's layout
  frames = frames_u8.astype(np.float32) / np.float32(255.0)
  x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 1, 4, 3, 2)))  # [O]'s (C, W, H) images
  with torch.no_grad():
    feats = model.features(x)
    logit = model.pool[5](feats)[:, 0]
    prob = model(x)[:, 0]
  sd = {
    f"sd/{k}": v.detach().numpy().astype(np.float32)
    for k, v in model.state_dict().items()
    if not k.endswith("num_batches_tracked")
  }
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(
    args.out,
    frames_u8_BxTxHxWxC=frames_u8,
    lengths_B=np.full((B,), T, np.int32),
    logit_B=logit.numpy().astype(np.float64),
    prob_B=prob.numpy().astype(np.float64),
    feats_torch_BxF=feats.numpy().astype(np.float64),
    **sd,
  )
  print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes); logit {logit.numpy()}, prob {prob.numpy()}")


if __name__ == "__main__":
  main()
