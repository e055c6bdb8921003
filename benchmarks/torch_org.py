"""The official RealSmileNet ``org`` model ([O], class ``DeepSmileNet``, ``re="org"``) in PyTorch, for benchmarks and
the weight-import parity fixture only. Never imported by the package or the tests (no torch there).

Written from spec ``realsmilenet.md`` §3; only the module *names* follow [O]
(Yan98/Deep-learning-for-genuine-and-posed-smile-classification, ``model.py``), so that ``state_dict()`` keys are
[O]'s and :func:`smilejax.models.torch_import.realsmilenet_variables_from_torch` reads a checkpoint of either:

    TA.conv.{weight,bias}                                  temporal attention, Conv3x3 3->3
    encoder.0.*                                            BatchNorm2d(3)
    encoder.1.conv.*, encoder.1.bn.*                       Conv3x3 3->4 + BN (Convbn)
    encoder.3.conv.*, encoder.3.bn.*                       Conv3x3 4->6 + BN (Convbn)
    decoder.cell.conv.{weight,bias}                        ConvLSTM gate conv 14->32
    pool.0.theta.*, pool.0.phi.0.*, pool.0.g.0.*           non-local 1x1 convs (phi, g followed by MaxPool2)
    pool.0.W.0.*, pool.0.W.1.*                             non-local W conv 4->8 + BN (gamma = beta = 0 at init)
    pool.2.conv.*, pool.2.bn.*                             final Conv2x2 8->10 + BN (Convbn)
    pool.5.{weight,bias}                                   Linear 250->1 (then Sigmoid)

Like [O], images are laid out (C, W, H) (its image conversion swaps the spatial axes): inputs are
``B x T x C x W x H``. Unlike [O], there is no front padding: every video of the batch has all T frames real (then
[O]'s pad counts are all 0 and its output is the same).
"""

from __future__ import annotations

import torch
from torch import nn


class TemporalAttension(nn.Module):  # [O]'s spelling
  """x + x * Conv3x3(D), D_t = x_t - x_{t-1}, D_0 = 0; weight 1 at the centre of every (out, in) pair, bias 0."""

  def __init__(self, channels: int):
    super().__init__()
    self.conv = nn.Conv2d(channels, channels, 3, padding=1)
    with torch.no_grad():
      self.conv.weight.zero_()
      self.conv.weight[:, :, 1, 1] = 1.0
      self.conv.bias.zero_()

  def forward(self, x):
    d = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], 1)
    return x + x * self.conv(d.flatten(0, 1)).view_as(x)


class Convbn(nn.Module):
  """Conv2d -> BatchNorm2d -> ReLU."""

  def __init__(self, ins: int, outs: int, kernel: int, padding: int = 0):
    super().__init__()
    self.conv = nn.Conv2d(ins, outs, kernel, padding=padding)
    self.bn = nn.BatchNorm2d(outs)
    self.relu = nn.ReLU()

  def forward(self, x):
    return self.relu(self.bn(self.conv(x)))


class ConvLSTMCell(nn.Module):
  """[i, f, o, g] = split(Conv3x3([x ; h])); c = sig(f) c + sig(i) tanh(g); h = sig(o) tanh(c)."""

  def __init__(self, input_dim: int, hidden_dim: int):
    super().__init__()
    self.hidden_dim = hidden_dim
    self.conv = nn.Conv2d(input_dim + hidden_dim, 4 * hidden_dim, 3, padding=1)

  def forward(self, x, h, c):
    zi, zf, zo, zg = torch.split(self.conv(torch.cat([x, h], 1)), self.hidden_dim, 1)
    c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
    return torch.sigmoid(zo) * torch.tanh(c), c


class ConvLSTM(nn.Module):
  """Scans :class:`ConvLSTMCell` over B x T x C x W x H from a zero state; returns the last h."""

  def __init__(self, input_dim: int, hidden_dim: int):
    super().__init__()
    self.cell = ConvLSTMCell(input_dim, hidden_dim)

  def forward(self, x):
    b, t, _, hh, ww = x.shape
    h = x.new_zeros(b, self.cell.hidden_dim, hh, ww)
    c = torch.zeros_like(h)
    for i in range(t):
      h, c = self.cell(x[:, i], h, c)
    return h


class NONLocalBlock2D(nn.Module):
  """Dot-product non-local block, no softmax: z = x + W(F g), F = theta phi^T / N; phi, g max-pooled 2x2."""

  def __init__(self, in_channels: int):
    super().__init__()
    ci = max(in_channels // 2, 1)
    self.inter_channels = ci
    self.g = nn.Sequential(nn.Conv2d(in_channels, ci, 1), nn.MaxPool2d(2))
    self.W = nn.Sequential(nn.Conv2d(ci, in_channels, 1), nn.BatchNorm2d(in_channels))
    nn.init.zeros_(self.W[1].weight)
    nn.init.zeros_(self.W[1].bias)
    self.theta = nn.Conv2d(in_channels, ci, 1)
    self.phi = nn.Sequential(nn.Conv2d(in_channels, ci, 1), nn.MaxPool2d(2))

  def forward(self, x):
    b = x.shape[0]
    g = self.g(x).flatten(2).transpose(1, 2)  # B x N x ci
    theta = self.theta(x).flatten(2).transpose(1, 2)  # B x HW x ci
    phi = self.phi(x).flatten(2)  # B x ci x N
    f = theta @ phi / phi.shape[-1]
    y = (f @ g).transpose(1, 2).reshape(b, self.inter_channels, *x.shape[2:])
    return x + self.W(y)


class DeepSmileNet(nn.Module):
  """The ``org`` model: ``forward(x_BxTxCxWxH)`` -> probability B x 1; :meth:`logit` and :meth:`features` too."""

  def __init__(self):
    super().__init__()
    self.TA = TemporalAttension(3)
    self.encoder = nn.Sequential(
      nn.BatchNorm2d(3),
      Convbn(3, 4, 3, padding=1),
      nn.AvgPool2d(2),
      Convbn(4, 6, 3, padding=1),
      nn.AvgPool2d(2),
      nn.AvgPool2d(1),
      nn.Dropout2d(0.2),
    )
    self.decoder = ConvLSTM(6, 8)
    self.pool = nn.Sequential(
      NONLocalBlock2D(8),
      nn.AvgPool2d(2),
      Convbn(8, 10, 2),
      nn.Dropout(0.5),
      nn.Flatten(),
      nn.Linear(250, 1),
      nn.Sigmoid(),
    )

  def features(self, x):
    """The 250 flattened final-branch values (PyTorch order over (C, W, H))."""
    b, t = x.shape[:2]
    x = self.TA(x)
    e = self.encoder(x.flatten(0, 1))
    h = self.decoder(e.view(b, t, *e.shape[1:]))
    return self.pool[:5](h)

  def logit(self, x):
    return self.pool[5](self.features(x))[:, 0]

  def forward(self, x):
    return self.pool[6](self.pool[5](self.features(x)))
