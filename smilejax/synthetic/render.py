"""The synthetic face renderer (synthetic.md §4, render version 2): a 64x64 RGB face crop per frame, uint8
[T, H, W, 3], framed as a face detector frames a face, with the smile's magnitudes measured on real clips.

Every displacement is linear in the latent AU drivers X_TxA (before gain and noise), so pixels and the AU CSV carry
independent noise. Shapes are soft-edged signed-distance masks in normalised frame coordinates (u right, v down).
Implementation choices where the spec leaves room: the Gaussian blur is applied analytically to shape edges and
lines (`_soft`, `_line`), the sensor noise is an 8-bit-quantised normal from a lookup table (`_NOISE_LUT`),
and features are drawn only inside pixel windows around their place (`_render_chunk`): same image statistics, a
fraction of the cost. One deviation from §4: the lip gap per AU25 (``LIP_GAP_AU25``) is 0.16, not 0.12, so open
smiles reach the apex gap of §6.7.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np

from smilejax import constants as C
from smilejax.synthetic.latents import Appearance
from smilejax.synthetic.series import ar1, ar1_rho

_AU = C.AU_INDEX  # AU number -> column

# The Gaussian blur of spec §4 (sigma 0.5 px) is applied analytically to every shape edge instead of to the pixel
# grid: a pixel's box footprint (SD 1/sqrt(12) px) convolved with the blur has SD sqrt(1/12 + 0.25) = 0.577 px,
# which a linear edge ramp of width 2 px matches (SD 2/sqrt(12)); a 1-px line becomes a unit-area Gaussian profile
# of that SD (peak 0.69). Same image as area sampling + blur, at no extra cost per pixel.
_EDGE_RAMP_PX = 2.0
_LINE_SD_PX = math.sqrt(1.0 / 12.0 + 0.25)
# Sensor noise SD 1.5 grey levels: one random byte per sample through a normal-quantile table (8-bit-quantised
# N(0, 1.5^2), tails at +-2.7 SD): same SD as float normals, far cheaper.
_NOISE_LUT = np.array([statistics.NormalDist(0.0, 1.5).inv_cdf((i + 0.5) / 256.0) for i in range(256)], np.float32)
_NOISE_LUT_HALF = _NOISE_LUT + np.float32(0.5)  # + 0.5: the final cast to uint8 truncates

# Render version 2 magnitudes (spec §4), set from two real clips as RealSmileNet sees them (48x48, every 0.1 s).
# Displacements are fractions of the frame per AU/5; darkness is a fraction of the grey level.
MOUTH_CORNER_UP, MOUTH_CORNER_OUT = 0.10, 0.08  # x AU12/5
LIP_HALF_THICKNESS = 0.035
# Lip gap: 0.16 AU25/5 instead of the spec's 0.12, which gives open smiles a median apex gap of 2.7 px at 48 against
# the 3.5 px its own check (§6.7) and the real clips (4.3-5.1 px) ask for.
LIP_GAP_AU25, LIP_GAP_AU26 = 0.16, 0.10  # x AU25/5, AU26/5
NASOLABIAL_DARKNESS = 0.25  # x AU12/5
HEAD_PITCH_PX_PER_DEG = 0.8  # at 64x64, x head (deg) x a(t)
CROW_FEET_DARKNESS, CROW_FEET_CAP, CROW_FEET_WIDTH_PX = 0.40, 0.60, 1.5  # x wr a(t - lag6); width at 64x64


def _soft(sd_px):
  """Coverage from a signed distance in pixels (negative inside), with the blur-matched 2-px edge ramp."""
  return np.clip(0.5 - sd_px * (1.0 / _EDGE_RAMP_PX), 0.0, 1.0)


def _line(d_px, width_px=1.0):
  """Coverage of a line width_px wide at distance d_px, blurred: a Gaussian of area width_px and SD
  sqrt(width_px^2/12 + 0.333) px (the line's box, the pixel's box and the 0.5-px blur; 0.577 px for 1 px)."""
  sd = math.sqrt(width_px * width_px / 12.0 + _LINE_SD_PX**2 - 1.0 / 12.0)
  return np.exp(d_px * d_px * (-0.5 / sd**2)) * (width_px / (sd * math.sqrt(2 * math.pi)))


def _ellipse_sd(x, y, rx, ry):
  """Signed distance to an axis-aligned ellipse, first order: f / |grad f| with f = (x/rx)^2 + (y/ry)^2 - 1."""
  f = (x / rx) ** 2 + (y / ry) ** 2 - 1.0
  g = 2.0 * np.sqrt((x / (rx * rx)) ** 2 + (y / (ry * ry)) ** 2)
  return f / np.maximum(g, 1e-6)


def _segment_dist(x, y, x0, y0, x1, y1):
  """Distance from points (x, y) to the segment (x0, y0)-(x1, y1) (all broadcastable)."""
  dx, dy = x1 - x0, y1 - y0
  h = np.clip(((x - x0) * dx + (y - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
  return np.hypot(x - x0 - h * dx, y - y0 - h * dy)


@dataclasses.dataclass(frozen=True)
class RenderNuisance:
  """Per-video render draws (spec §4): asymmetry alpha, head translation (px) and roll (deg) AR(1) series,
  brightness gain AR(1) series."""

  alpha: float
  dx_T: np.ndarray
  dy_T: np.ndarray
  roll_T: np.ndarray
  gain_T: np.ndarray


def draw_render_nuisance(rng: np.random.Generator, T: int, fps: float) -> RenderNuisance:
  """alpha ~ N(0, 0.08^2); translation AR(1) rho 0.97, SD 0.5 px; roll AR(1) rho 0.97, SD 1 deg; gain AR(1)
  tau 2 s, SD 3 %."""
  alpha = float(rng.normal(0.0, 0.08))
  trans = ar1(rng, T, rho=0.97, sd=0.5, size=(2,))
  roll = ar1(rng, T, rho=0.97, sd=1.0)
  gain = 1.0 + ar1(rng, T, rho=ar1_rho(2.0, fps), sd=0.03)
  return RenderNuisance(alpha=alpha, dx_T=trans[0], dy_T=trans[1], roll_T=roll, gain_T=gain)


def crow_feet_segments(ap: Appearance) -> list[tuple[float, float, float, float]]:
  """The six crow's-feet lines (three per outer eye corner, fanning outwards), (u0, v0, u1, v1) in face coords."""
  segs = []
  for side in (-1.0, 1.0):
    u0 = ap.cx + side * (ap.eye_dx + ap.eye_rx + 0.012)
    for ang in (-28.0, 0.0, 28.0):
      r = math.radians(ang)
      segs.append((u0, ap.eye_y, u0 + side * 0.07 * math.cos(r), ap.eye_y + 0.07 * math.sin(r)))
  return segs


def eye_corner_patch(ap: Appearance, *, size: int = 48) -> list[tuple[slice, slice]]:
  """Pixel windows (rows, cols) in a size x size frame covering each outer eye corner's crow's-feet lines (their
  bounding box at the nominal head position, rounded outwards)."""
  segs = crow_feet_segments(ap)
  out = []
  for group in (segs[:3], segs[3:]):
    us = [g[0] for g in group] + [g[2] for g in group]
    vs = [g[1] for g in group] + [g[3] for g in group]
    r0, r1 = int(math.floor(min(vs) * size)), int(math.ceil(max(vs) * size))
    c0, c1 = int(math.floor(min(us) * size)), int(math.ceil(max(us) * size))
    out.append((slice(max(0, r0), min(size, r1)), slice(max(0, c0), min(size, c1))))
  return out


def render_frames(
  ap: Appearance,
  X_TxA: np.ndarray,
  a_T: np.ndarray,
  a_lag_T: np.ndarray,
  *,
  wr: float,
  head: float,
  nuisance: RenderNuisance,
  rng: np.random.Generator,
  size: int = 64,
  chunk: int = 16,
) -> np.ndarray:
  """Render the face crop, uint8 [T, size, size, 3] (spec §4, render version 2). Every displacement is linear in
  the latent AU values X_TxA (before gain and noise). Pixel-mostly cues: crow's-feet darkness 40 % wr a(t - lag6)
  (cap 60 %), head pitch shift head * 0.8 px/deg * a(t) at 64x64. Vectorised over a chunk of frames; features are drawn inside
  pixel windows around their nominal place (widened by the chunk's largest head motion)."""
  T = X_TxA.shape[0]
  out = np.empty((T, size, size, 3), np.uint8)
  for t0 in range(0, T, chunk):
    sl = slice(t0, min(T, t0 + chunk))
    out[sl] = _render_chunk(
      ap,
      X_TxA[sl],
      a_T[sl],
      a_lag_T[sl],
      wr=wr,
      head=head,
      alpha=nuisance.alpha,
      dx_T=nuisance.dx_T[sl],
      dy_T=nuisance.dy_T[sl],
      roll_T=nuisance.roll_T[sl],
      gain_T=nuisance.gain_T[sl],
      rng=rng,
      size=size,
    )
  return out


def _render_chunk(ap, X, a, a_lag, *, wr, head, alpha, dx_T, dy_T, roll_T, gain_T, rng, size):
  f32 = np.float32
  n = X.shape[0]
  P = float(size)  # pixels per unit

  def col(v):  # per-frame parameter -> [n, 1, 1]
    return np.asarray(v, f32).reshape(-1, 1, 1)

  au = {num: col(X[:, _AU[num]] / 5.0) for num in (1, 2, 4, 6, 7, 10, 12, 25, 26, 45)}
  # Pixel grid -> face coordinates: undo the per-frame translation (+ smile-linked head pitch) and roll.
  g = (np.arange(size, dtype=f32) + 0.5) / P
  shift_y = dy_T - head * HEAD_PITCH_PX_PER_DEG * (P / 64.0) * a  # px; the head tilts up with the smile
  theta = np.deg2rad(roll_T)
  cos, sin = col(np.cos(theta)), col(np.sin(theta))
  xu = g[None, None, :] - col(dx_T / P + ap.cx)
  yv = g[None, :, None] - col(shift_y / P + ap.cy)
  fu = cos * xu + sin * yv  # [n, H, W], relative to the face centre
  fv = cos * yv - sin * xu
  u, v = fu + f32(ap.cx), fv + f32(ap.cy)
  # Window margin: the largest displacement in this chunk (translation + roll about the face centre) + edges.
  margin = int(math.ceil(max(np.abs(dx_T).max(), np.abs(shift_y).max()) + np.abs(theta).max() * 0.75 * P)) + 3

  def box(u0, u1, v0, v1):
    r0, r1 = max(0, int(v0 * P) - margin), min(size, int(math.ceil(v1 * P)) + margin)
    c0, c1 = max(0, int(u0 * P) - margin), min(size, int(math.ceil(u1 * P)) + margin)
    return (slice(None), slice(r0, r1), slice(c0, c1))

  skin = np.array(ap.skin_rgb, f32)
  hair = np.array(ap.hair_rgb, f32)
  bg = f32(ap.background)
  # Head (hair colour), face (skin) and fringe over the whole frame, written channel by channel.
  head_m = _soft(
    ((fu / (ap.ax * 1.07)) ** 2 + ((fv + 0.02) / (ap.ay * 1.04)) ** 2 - 1.0) * (0.25 * P * (ap.ax + ap.ay))
  )
  face_m = _soft(((fu / ap.ax) ** 2 + (fv / ap.ay) ** 2 - 1.0) * (0.25 * P * (ap.ax + ap.ay)))
  # Hair shell only above the eyes (no hair ring around the cheeks and chin).
  head_m = np.maximum(head_m * np.clip(0.5 + (-0.2 * ap.ay - fv) * (P / 6.0), 0.0, 1.0), face_m)
  hairline = -0.70 * ap.ay + 0.06 * (fu / ap.ax) ** 2
  skin_m = face_m * np.clip(0.5 + (fv - hairline) * (P / _EDGE_RAMP_PX), 0.0, 1.0)
  img = np.empty((n, size, size, 3), f32)
  for c in range(3):
    img[..., c] = bg + head_m * (hair[c] - bg) + skin_m * (skin[c] - hair[c])

  def blend(w, mask, colour):
    sub = img[w]
    sub += mask[..., None] * (np.asarray(colour, f32) - sub)

  shade = np.ones((n, size, size), f32)  # multiplicative shading, applied once at the end

  def darken(w, mask, amount):
    shade[w] *= 1.0 - mask * amount

  # Static age lines on the forehead, contrast 0.1 max(0, (age - 40)/36) (class-independent wrinkle confound).
  if ap.age_line_contrast > 0:
    w = box(ap.cx - 0.35 * ap.ax, ap.cx + 0.35 * ap.ax, ap.brow_y - 0.09, ap.brow_y - 0.03)
    for dy in (0.045, 0.075):
      d = (v[w] - (ap.brow_y - dy) - 0.04 * (fu[w] / ap.ax) ** 2) * P
      darken(w, _line(d) * (np.abs(fu[w]) < 0.35 * ap.ax), ap.age_line_contrast)

  # Brows: inner end up 0.03 AU01/5, outer up 0.03 AU02/5, inner down and in 0.02 AU04/5.
  brow_col = 0.55 * hair + 0.45 * (0.35 * skin)
  w = box(ap.cx - 0.7 * ap.ax, ap.cx + 0.7 * ap.ax, ap.brow_y - 0.07, ap.brow_y + 0.05)
  for side in (-1.0, 1.0):
    xi = ap.cx + side * (0.10 * ap.ax - 0.02 * au[4])
    yi = ap.brow_y - 0.03 * au[1] + 0.02 * au[4]
    xo = ap.cx + side * 0.60 * ap.ax
    yo = ap.brow_y + 0.01 - 0.03 * au[2]
    d = _segment_dist(u[w], v[w], xi, yi, xo, yo) - ap.brow_thickness / 2
    blend(w, _soft(d * P) * 0.9, brow_col)

  # Eyes: aperture = clip(1 - 0.45 AU45/3 - 0.15 AU6/5 - 0.10 AU7/5, 0, 1).
  aperture = np.clip(1.0 - 0.45 * au[45] * (5.0 / 3.0) - 0.15 * au[6] - 0.10 * au[7], 0.0, 1.0)
  lash = 0.35 * skin
  ry = ap.eye_ry * aperture
  for side in (-1.0, 1.0):
    ex = ap.cx + side * ap.eye_dx
    w = box(ex - ap.eye_rx * 1.1, ex + ap.eye_rx * 1.1, ap.eye_y - ap.eye_ry - 0.015, ap.eye_y + ap.eye_ry + 0.015)
    x, y = u[w] - ex, v[w] - ap.eye_y
    blend(w, _soft(_ellipse_sd(x, y, ap.eye_rx * 1.08, ry + 0.010) * P) * 0.85, lash)  # lids, lashes
    sclera = _soft(_ellipse_sd(x, y, ap.eye_rx, np.maximum(ry, 1e-3)) * P) * np.clip(ry * P, 0.0, 1.0)
    blend(w, sclera, (235.0, 232.0, 228.0))
    blend(w, sclera * _soft((np.hypot(x, y) - 0.7 * ap.eye_ry) * P), (45.0, 35.0, 30.0))  # iris
    # Cheek highlight +10 % AU6/5 rising 0.08 AU6/5; lower-lid bulge shadow 10 % AU6/5.
    w = box(ex - 0.10, ex + 0.10, ap.eye_y + ap.eye_ry - 0.04, ap.eye_y + 0.21)
    hy = ap.eye_y + 0.12 - 0.08 * au[6]
    blob = np.exp(((u[w] - ex) ** 2 + (v[w] - hy) ** 2) * (-0.5 / 0.045**2))
    darken(w, blob, -0.10 * au[6])
    x = u[w] - ex
    d_lid = (v[w] - (ap.eye_y + ap.eye_ry + 0.016) - 0.01 * (x / ap.eye_rx) ** 2) * P
    darken(w, _soft(np.abs(d_lid) - 1.0) * (np.abs(x) < ap.eye_rx), 0.10 * au[6])
  # Crow's feet: 1.5-px lines (at 64x64), darkness 40 % wr a(t - lag6) capped at 60 %, plus the static age contrast.
  crow = np.minimum(CROW_FEET_DARKNESS * wr * col(a_lag), CROW_FEET_CAP) + ap.age_line_contrast
  segs = crow_feet_segments(ap)
  for side, group in ((-1.0, segs[:3]), (1.0, segs[3:])):
    us = [s[0] for s in group] + [s[2] for s in group]
    vs = [s[1] for s in group] + [s[3] for s in group]
    w = box(min(us), max(us), min(vs), max(vs))
    d = np.minimum(
      np.minimum(_segment_dist(u[w], v[w], *group[0]), _segment_dist(u[w], v[w], *group[1])),
      _segment_dist(u[w], v[w], *group[2]),
    )
    darken(w, _line(d * P, CROW_FEET_WIDTH_PX * P / 64.0), crow)

  # Nose (static): a shading line and the nostrils.
  w = box(ap.cx - 0.05, ap.cx + 0.05, ap.eye_y, ap.nose_y + 0.02)
  d = _segment_dist(u[w], v[w], ap.cx + 0.02, ap.eye_y + 0.03, ap.cx + 0.03, ap.nose_y - 0.02) * P
  darken(w, _line(d), 0.12)
  for side in (-1.0, 1.0):
    darken(w, _soft(_ellipse_sd(u[w] - ap.cx - side * 0.03, v[w] - ap.nose_y, 0.014, 0.008) * P), 0.35)

  # Mouth: corners up 0.10 AU12/5 and out 0.08 AU12/5 (of the frame), per side x (1 +- alpha).
  my = ap.mouth_y
  uL = ap.cx - ap.mouth_hw - MOUTH_CORNER_OUT * au[12] * (1 + alpha)
  uR = ap.cx + ap.mouth_hw + MOUTH_CORNER_OUT * au[12] * (1 - alpha)
  vL = my - MOUTH_CORNER_UP * au[12] * (1 + alpha)
  vR = my - MOUTH_CORNER_UP * au[12] * (1 - alpha)
  a12_max = float(np.abs(au[12]).max()) * (1 + abs(alpha))  # the chunk's largest AU12/5 on either side
  reach = ap.mouth_hw + 0.05 + MOUTH_CORNER_OUT * a12_max
  # Nasolabial folds: darkening 25 % AU12/5 from the nose wings to just outside the mouth corners.
  for side, uc, vc in ((-1.0, uL, vL), (1.0, uR, vR)):
    w = box(*sorted((ap.cx + side * 0.05, ap.cx + side * reach)), ap.nose_y - 0.01, my + 0.01)
    d = _segment_dist(u[w], v[w], ap.cx + side * 0.05, ap.nose_y - 0.005, uc + side * 0.02, vc + 0.005) * P
    darken(w, _soft(np.abs(d) - 1.0), NASOLABIAL_DARKNESS * au[12])
  gap = LIP_GAP_AU25 * au[25] + LIP_GAP_AU26 * au[26]  # lip gap
  w = box(
    ap.cx - reach,
    ap.cx + reach,
    my - MOUTH_CORNER_UP * a12_max - 0.05,
    my + 0.5 * float(gap.max()) + LIP_HALF_THICKNESS + 0.02,
  )
  uw, vw = u[w], v[w]
  um, vm = ap.cx, my + 0.004
  # Lip line: the parabola through both corners and the (fixed) middle point (Lagrange form).
  y_line = (
    vL * (uw - um) * (uw - uR) / ((uL - um) * (uL - uR))
    + vm * (uw - uL) * (uw - uR) / ((um - uL) * (um - uR))
    + vR * (uw - uL) * (uw - um) / ((uR - uL) * (uR - um))
  )
  hw = 0.5 * (uR - uL)
  s = (uw - 0.5 * (uL + uR)) / hw
  w_len = np.clip(1.0 - s * s, 0.0, 1.0)  # lens profile along the mouth
  inside = _soft((np.abs(s) - 1.0) * hw * P)  # horizontal extent, soft at the corners
  dv = np.abs(vw - y_line)
  half_gap = 0.5 * gap * w_len
  open_m = np.clip(gap * P, 0.0, 1.0)
  lips = _soft((dv - half_gap - LIP_HALF_THICKNESS * np.sqrt(w_len)) * P)
  blend(w, inside * lips, skin * np.array([0.78, 0.55, 0.55], f32))
  blend(w, inside * _soft((dv - half_gap) * P) * open_m, (70.0, 30.0, 35.0))  # dark interior
  teeth = np.clip((au[10] + au[25] - 0.3) * (5.0 / 0.3), 0.0, 1.0)  # AU10 + AU25 > 1.5
  top = y_line - half_gap
  tb = _soft(np.maximum(top - vw, vw - (top + 0.45 * gap * w_len)) * P) * open_m
  blend(w, inside * tb * teeth, (225.0, 222.0, 210.0))
  blend(w, inside * _line(dv * P) * (1.0 - open_m) * 0.8, (80.0, 35.0, 40.0))  # closed-lip line

  # Lighting gradient (+-8 %, left to right) and brightness gain AR(1) with the shading, then sensor noise.
  shade *= (1.0 + ap.light_gradient * (2.0 * g - 1.0))[None, None, :] * col(gain_T)
  img *= shade[..., None]
  img += _NOISE_LUT_HALF[np.frombuffer(rng.bytes(img.size), np.uint8).reshape(img.shape)]
  np.clip(img, 0.0, 255.0, out=img)
  return img.astype(np.uint8)  # noise + 0.5, then truncation: rounds to the nearest grey level
