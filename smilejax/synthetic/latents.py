"""Subjects and latent smiles of the synthetic corpus (synthetic.md §1; subject baselines §2, gains §3, looks §4).

Also the generator's options (`SyntheticConfig`, named sizes §5) and its random streams. Determinism (§5): every
draw comes from a NumPy Generator keyed by (seed, subject, kind, k, stream) through `np.random.SeedSequence`, so
adding subjects changes no existing video, and the latent draws do not depend on the rendering or observation
options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from smilejax import constants as C
from smilejax.errors import InputError

# ----------------------------------------------------------------------------------------------------------------
# Tables of spec section 1 (values [D], directions [M]); (posed median, spontaneous median, sigma of ln).
# ----------------------------------------------------------------------------------------------------------------
LOGNORMAL_LATENTS: dict[str, tuple[float, float, float]] = {
  "d_on": (0.45, 0.75, 0.38),  # onset duration, s
  "d_ap": (1.10, 1.50, 0.50),  # apex duration, s
  "d_off": (0.55, 1.00, 0.42),  # offset duration, s
  "amplitude": (2.40, 2.00, 0.25),  # A, AU12 amplitude (0-5), clipped to AMPLITUDE_CLIP
  "irr": (0.06, 0.08, 0.45),  # apex fluctuation SD / A
}
AMPLITUDE_CLIP = (0.6, 4.6)
TEMPO_SD = 0.18  # subject tempo u, added to ln D_on, ln D_ap, ln D_off
EXPRESSIVITY_SD = 0.15  # subject expressivity v, added to ln A
AGE_RANGE = (8.0, 76.0)  # years [M S6]
AGE_EFFECT = 0.05  # ln D += 0.05 (age-35)/30, ln A -= 0.05 (age-35)/30
DUCHENNE_OFFSET = (0.4, 1.4)  # logit = subject propensity N(0,1) + c
G6_DUCHENNE = (0.45, 0.60, 0.35)  # AU6 peak / A if Duchenne
G6_NON_DUCHENNE = (0.08, 0.08, 0.50)
LAG6 = ((0.15, 0.15), (0.04, 0.10))  # N(mean, sd) per class, s
OPEN_MOUTH_P = (0.45, 0.55)
# The pixel-mostly cues, calibrated (§1, version 2) so that the Bayes check on (ln wr, ln head) alone gives 0.802
# (target 0.78-0.82) and on all latents 0.920 (target <= 0.94).
WRINKLE = (0.30, 0.62, 0.55)  # wr, x0.3 if not Duchenne
WRINKLE_NON_DUCHENNE_FACTOR = 0.3
HEAD_PITCH = (0.6, 1.25, 0.6)  # deg
PRE_ROLL = (0.3, 1.0)  # U(.,.) s
POST_ROLL = (0.4, 1.5)
APEX_FLUCTUATION_TAU_S = 0.4
MIN_APEX_S = 0.2  # a clip cap shrinks the apex down to this, then the on/offset

# Spec section 2: static (person-independent) vs dynamic OpenFace intensity models [M S17].
STATIC_AUS = (4, 6, 7, 10, 12, 14)
# Deviation from §2 (generator 1.1.0, with observation.QUIET_DYNAMIC_AUS): the static AU07, AU10, AU14 rest at mean
# -0.2 instead of 0.1 / 0.0 / 0.1, so quiet static AUs read exact zero at rest as in real OpenFace output (the spec's
# §3 check "inactive AUs >= 50 % exact zeros at rest" cannot be met with its own values). SD 0.35 as specified, so a
# minority of subjects still reads non-zero levels; AU04 0.2 and AU06/AU12 -0.1 as specified.
STATIC_BASELINE_MEAN = {4: 0.2, 6: -0.1, 7: -0.2, 10: -0.2, 12: -0.1, 14: -0.2}
STATIC_BASELINE_SD = 0.35
# Spec section 3: per-subject observation gain, ln-normal SD per AU (others 0.20).
GAIN_SD_LN = {12: 0.15}
GAIN_SD_LN_OTHER = 0.20

# Subject/video counts [§5].
POSED_COUNT_P = (0.45, 0.45, 0.10)  # 1, 2, 3 posed videos
SPONT_COUNT_P = (0.55, 0.40, 0.04, 0.01)  # 1..4 spontaneous videos
SPONT_GAP_P = 0.15  # probability that spontaneous numbering skips one k [D]

# Random-stream keys: (seed, subject, kind, k, stream).
KIND_SUBJECT, KIND_POSED, KIND_SPONT, KIND_FOLDS = 0, 1, 2, 3
STREAM_LATENT, STREAM_AUS, STREAM_OBS, STREAM_SI, STREAM_RENDER = 0, 1, 2, 3, 4
STREAM_TRAITS = 0


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Generator options (spec §3-§5). Every field enters the config hash of generator.json."""

  n_subjects: int = 110
  fps: int = C.BASE_FPS
  min_clip_s: float = 2.0  # §1: clip length kept in [2, 10] s
  max_clip_s: float = 10.0
  image_size: int = 64  # §4: 64x64 RGB face crop
  crf: int = 10  # §4: H.264 near-lossless (crf <= 12); 0 = lossless
  write_videos: bool = True
  clip_output: bool = True  # §3 step 3 (False: unclipped values, as the AUDA replication data)
  dynamic_offset_quantile: float = 0.3  # §3 step 2
  quiet_offset_quantile: float = 0.8  # §3 step 2 for observation.QUIET_DYNAMIC_AUS (a deviation)
  failed_video_rate: float = 0.10  # §3 step 7
  bad_input_rate: float = 0.0  # §3 step 7: a 15-frame gap (error-path tests)


CONFIGS: dict[str, SyntheticConfig] = {
  "tiny": SyntheticConfig(n_subjects=12, max_clip_s=4.0),
  "default": SyntheticConfig(n_subjects=110),
  "uvanemo": SyntheticConfig(n_subjects=400),
}


def get_config(size: str | SyntheticConfig = "default", **overrides: Any) -> SyntheticConfig:
  """The named config (`tiny`, `default`, `uvanemo`) with field overrides; raises InputError on bad input."""
  if isinstance(size, SyntheticConfig):
    config = size
  elif size in CONFIGS:
    config = CONFIGS[size]
  else:
    raise InputError(f"synthetic corpus: unknown size {size!r} (expected one of {', '.join(CONFIGS)})")
  fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
  bad = sorted(set(overrides) - fields)
  if bad:
    raise InputError(f"synthetic corpus: unknown config option(s) {', '.join(bad)}")
  config = dataclasses.replace(config, **overrides)
  if not 1 <= config.n_subjects <= 999:
    raise InputError(f"synthetic corpus: n_subjects must be in 1..999, got {config.n_subjects}")
  if not 0 <= config.crf <= 51:
    raise InputError(f"synthetic corpus: crf must be in 0..51, got {config.crf}")
  if config.min_clip_s > config.max_clip_s or config.max_clip_s < 2.0:
    raise InputError(
      f"synthetic corpus: bad clip limits [{config.min_clip_s}, {config.max_clip_s}] s (max must be >= 2 s)"
    )
  if config.image_size < 16 or config.image_size % 2:
    raise InputError(f"synthetic corpus: image_size must be even and >= 16, got {config.image_size}")
  return config


def stream_rng(seed: int, subject: int, kind: int, k: int, stream: int) -> np.random.Generator:
  """The Generator of one random stream, keyed by (seed, subject, kind, k, stream) (§5 determinism)."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(subject), int(kind), int(k), int(stream)]))


def video_rng(seed: int, subject: int, label: int, k: int, stream: int) -> np.random.Generator:
  """The Generator of one stream of video (subject, label, k)."""
  return stream_rng(seed, subject, KIND_POSED if label == C.LABEL_POSED else KIND_SPONT, k, stream)


def video_id(subject: int, label: int, k: int) -> str:
  """UvA-NEMO style id: `001_deliberate_smile_1` (posed) / `001_spontaneous_smile_2`."""
  kind = "deliberate" if label == C.LABEL_POSED else "spontaneous"
  return f"{subject:03d}_{kind}_smile_{k}"


# ----------------------------------------------------------------------------------------------------------------
# Subjects
# ----------------------------------------------------------------------------------------------------------------
SKIN_PALETTE = np.array(
  [  # light to dark [D]
    (242, 215, 192),
    (232, 192, 162),
    (218, 172, 137),
    (198, 150, 112),
    (173, 124, 89),
    (142, 99, 70),
    (112, 76, 54),
    (86, 58, 43),
  ],
  np.float32,
)
HAIR_PALETTE = np.array([(32, 28, 26), (68, 48, 34), (110, 78, 52), (176, 146, 98), (120, 62, 40)], np.float32)
GREY_HAIR_PALETTE = np.array([(160, 158, 155), (205, 203, 198)], np.float32)


@dataclasses.dataclass(frozen=True)
class Appearance:
  """Per-subject face geometry and colours (spec §4), in normalised frame coordinates (u right, v down)."""

  skin_rgb: tuple[float, float, float]
  hair_rgb: tuple[float, float, float]
  background: float
  cx: float
  cy: float
  ax: float  # face ellipse semi-axes
  ay: float
  eye_dx: float  # eye centre distance from cx
  eye_y: float
  eye_rx: float
  eye_ry: float
  brow_y: float
  brow_thickness: float
  mouth_hw: float  # half width
  mouth_y: float
  nose_y: float
  light_gradient: float  # left-right multiplicative gradient, +-8 %
  age_line_contrast: float  # 0.1 max(0, (age-40)/36)


@dataclasses.dataclass(frozen=True)
class Subject:
  """Subject-level draws shared by all of a subject's videos (spec §1, §2, §3, §4, §5)."""

  subject: int
  age: float
  tempo: float  # u, added to ln D
  expressivity: float  # v, added to ln A
  duchenne_propensity: float
  static_baseline: dict  # AU number -> rest baseline of the static AUs
  gain_A: np.ndarray  # [17] per-AU observation gain
  posed_ks: tuple[int, ...]
  spont_ks: tuple[int, ...]
  appearance: Appearance

  def video_keys(self) -> list[tuple[int, int]]:
    """(label, k) of this subject's videos."""
    return [(C.LABEL_POSED, k) for k in self.posed_ks] + [(C.LABEL_SPONTANEOUS, k) for k in self.spont_ks]


def _draw_appearance(rng: np.random.Generator, age: float) -> Appearance:
  skin = SKIN_PALETTE[rng.integers(len(SKIN_PALETTE))] + rng.normal(0.0, 6.0, 3)
  p_grey = 0.05 if age < 45 else (0.3 if age <= 55 else 0.75)
  if rng.random() < p_grey:
    hair = GREY_HAIR_PALETTE[rng.integers(len(GREY_HAIR_PALETTE))]
  else:
    hair = HAIR_PALETTE[rng.integers(len(HAIR_PALETTE))]
  hair = hair + rng.normal(0.0, 5.0, 3)
  # Framed as a frontal face detector frames a face (§4, render version 2): the face fills the frame, outer eye
  # corners 0.50-0.56 of the width apart, brows near 0.33 and the mouth near 0.75 of the height.
  scale = rng.uniform(0.97, 1.03)
  aspect = rng.uniform(-0.06, 0.06)
  ax, ay = 0.44 * scale * (1 + aspect / 2), 0.42 * scale * (1 - aspect / 2)
  cx = 0.5 + rng.uniform(-2.0, 2.0) / 64.0
  cy = 0.55 + rng.uniform(-2.0, 2.0) / 64.0
  jit = lambda: 1.0 + rng.uniform(-0.08, 0.08)  # noqa: E731  (+-8 % feature sizes)
  eye_rx = 0.075 * scale
  return Appearance(
    skin_rgb=tuple(float(c) for c in np.clip(skin, 40, 250)),
    hair_rgb=tuple(float(c) for c in np.clip(hair, 10, 230)),
    background=float(180.0 + rng.uniform(-15.0, 15.0)),
    cx=float(cx),
    cy=float(cy),
    ax=float(ax),
    ay=float(ay),
    eye_dx=float((0.265 * scale - eye_rx) * jit()),
    eye_y=float(cy - 0.35 * ay),
    eye_rx=float(eye_rx),
    eye_ry=float(0.028 * scale),
    brow_y=float(cy - 0.52 * ay),
    brow_thickness=float(0.022 * jit()),
    mouth_hw=float(0.40 * ax * jit()),
    mouth_y=float(cy + 0.48 * ay),
    nose_y=float(cy + 0.13 * ay),
    light_gradient=float(rng.uniform(-0.08, 0.08)),
    age_line_contrast=float(0.1 * max(0.0, (age - 40.0) / 36.0)),
  )


def _categorical(u: float, p: Sequence[float]) -> int:
  """Index i with P(i) = p[i] from a uniform u in [0, 1)."""
  acc = 0.0
  for i, pi in enumerate(p):
    acc += pi
    if u < acc:
      return i
  return len(p) - 1


def draw_subject(seed: int, subject: int) -> Subject:
  """All subject-level draws for subject number `subject` (1-based)."""
  # One stream per subject, drawn in a fixed order: traits, video counts, appearance.
  rng = stream_rng(seed, subject, KIND_SUBJECT, 0, STREAM_TRAITS)
  age = float(rng.uniform(*AGE_RANGE))
  tempo = float(rng.normal(0.0, TEMPO_SD))
  expressivity = float(rng.normal(0.0, EXPRESSIVITY_SD))
  propensity = float(rng.normal(0.0, 1.0))
  baseline = {au: float(rng.normal(STATIC_BASELINE_MEAN[au], STATIC_BASELINE_SD)) for au in STATIC_AUS}
  gain_sd = np.array([GAIN_SD_LN.get(n, GAIN_SD_LN_OTHER) for n in C.AU_NUMBERS])
  gain_A = np.exp(rng.normal(0.0, 1.0, C.NUM_AUS) * gain_sd)

  u = rng.random(4)
  n_posed = 1 + _categorical(u[0], POSED_COUNT_P)
  n_spont = 1 + _categorical(u[1], SPONT_COUNT_P)
  spont_ks = list(range(1, n_spont + 1))
  if u[2] < SPONT_GAP_P:  # UvA-NEMO spontaneous numbering has gaps
    skip = 1 + int(u[3] * n_spont)
    spont_ks = [k + (k >= skip) for k in spont_ks]
  appearance = _draw_appearance(rng, age)
  return Subject(
    subject=subject,
    age=age,
    tempo=tempo,
    expressivity=expressivity,
    duchenne_propensity=propensity,
    static_baseline=baseline,
    gain_A=gain_A,
    posed_ks=tuple(range(1, n_posed + 1)),
    spont_ks=tuple(spont_ks),
    appearance=appearance,
  )


# ----------------------------------------------------------------------------------------------------------------
# Latent smile (spec §1)
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VideoLatents:
  """One video's latent smile (spec §1). Durations in s; `amplitude` is A (AU12 units)."""

  id: str
  subject: int
  label: int
  k: int
  age: float
  d_on: float
  d_ap: float
  d_off: float
  amplitude: float
  irr: float
  duchenne: bool
  g6: float
  lag6: float
  open_mouth: bool
  wr: float
  head: float
  pre_roll: float
  post_roll: float

  @property
  def duration_s(self) -> float:
    return self.pre_roll + self.d_on + self.d_ap + self.d_off + self.post_roll

  def n_frames(self, fps: float) -> int:
    return int(round(self.duration_s * fps))


def _fit_clip_length(
  pre: float, d_on: float, d_ap: float, d_off: float, post: float, *, min_s: float, max_s: float
) -> tuple[float, float, float, float, float]:
  """Keep the clip length in [min_s, max_s] (spec §1): extend the post-roll if short; if long, shrink the rolls
  to their lower bounds, then the apex (down to MIN_APEX_S), then scale onset and offset. (The spec says "shrink
  apex"; the rolls go first so the tiny corpus's 4-s clips keep their smiles. At the default 10-s limit this
  touches 0.3 % of clips.)"""
  total = pre + d_on + d_ap + d_off + post
  if total < min_s:
    post += min_s - total
    return pre, d_on, d_ap, d_off, post
  excess = total - max_s
  if excess <= 0:
    return pre, d_on, d_ap, d_off, post
  for name in ("post", "pre", "ap"):
    if excess <= 0:
      break
    if name == "post":
      cut = min(excess, max(0.0, post - POST_ROLL[0]))
      post -= cut
    elif name == "pre":
      cut = min(excess, max(0.0, pre - PRE_ROLL[0]))
      pre -= cut
    else:
      cut = min(excess, max(0.0, d_ap - MIN_APEX_S))
      d_ap -= cut
    excess -= cut
  if excess > 0:
    scale = (d_on + d_off - excess) / (d_on + d_off)
    d_on, d_off = d_on * scale, d_off * scale
  return pre, d_on, d_ap, d_off, post


def sample_video_latents(
  seed: int, subject: Subject, label: int, k: int, *, config: SyntheticConfig | None = None
) -> VideoLatents:
  """Draw one video's latents (spec §1). A fixed vector of standard draws is taken first, so the values depend
  only on (seed, subject, label, k) and the tables, never on other options."""
  config = config or CONFIGS["default"]
  rng = video_rng(seed, subject.subject, label, k, STREAM_LATENT)
  z = rng.standard_normal(9)
  uni = rng.random(5)
  c = 0 if label == C.LABEL_POSED else 1
  age_term = AGE_EFFECT * (subject.age - 35.0) / 30.0

  def lognormal(name: str, zi: float, extra: float) -> float:
    med = LOGNORMAL_LATENTS[name][c]
    return math.exp(math.log(med) + LOGNORMAL_LATENTS[name][2] * float(zi) + extra)

  d_on = lognormal("d_on", z[0], subject.tempo + age_term)
  d_ap = lognormal("d_ap", z[1], subject.tempo + age_term)
  d_off = lognormal("d_off", z[2], subject.tempo + age_term)
  amplitude = min(
    max(lognormal("amplitude", z[3], subject.expressivity - age_term), AMPLITUDE_CLIP[0]), AMPLITUDE_CLIP[1]
  )
  irr = lognormal("irr", z[4], 0.0)
  p_duchenne = 1.0 / (1.0 + math.exp(-(subject.duchenne_propensity + DUCHENNE_OFFSET[c])))
  duchenne = bool(uni[0] < p_duchenne)
  g6_table = G6_DUCHENNE if duchenne else G6_NON_DUCHENNE
  g6 = math.exp(math.log(g6_table[c]) + g6_table[2] * float(z[5]))
  lag6 = float(LAG6[c][0] + LAG6[c][1] * z[6])
  open_mouth = bool(uni[1] < OPEN_MOUTH_P[c])
  wr = math.exp(math.log(WRINKLE[c]) + WRINKLE[2] * float(z[7]))
  if not duchenne:
    wr *= WRINKLE_NON_DUCHENNE_FACTOR
  head = math.exp(math.log(HEAD_PITCH[c]) + HEAD_PITCH[2] * float(z[8]))
  pre = float(PRE_ROLL[0] + (PRE_ROLL[1] - PRE_ROLL[0]) * uni[2])
  post = float(POST_ROLL[0] + (POST_ROLL[1] - POST_ROLL[0]) * uni[3])
  pre, d_on, d_ap, d_off, post = _fit_clip_length(
    pre, d_on, d_ap, d_off, post, min_s=config.min_clip_s, max_s=config.max_clip_s
  )
  return VideoLatents(
    id=video_id(subject.subject, label, k),
    subject=subject.subject,
    label=int(label),
    k=int(k),
    age=subject.age,
    d_on=d_on,
    d_ap=d_ap,
    d_off=d_off,
    amplitude=amplitude,
    irr=irr,
    duchenne=duchenne,
    g6=g6,
    lag6=lag6,
    open_mouth=open_mouth,
    wr=wr,
    head=head,
    pre_roll=pre,
    post_roll=post,
  )


def draw_latent_table(
  n_subjects: int, *, seed: int = 0, first_subject: int = 1, config: SyntheticConfig | None = None
) -> list[VideoLatents]:
  """Latents of every video of subjects first_subject.. (no rendering, no AU series): for the Bayes check."""
  out = []
  for s in range(first_subject, first_subject + n_subjects):
    subj = draw_subject(seed, s)
    out.extend(sample_video_latents(seed, subj, label, k, config=config) for label, k in subj.video_keys())
  return out


def bayes_features(latents: Sequence[VideoLatents]) -> np.ndarray:
  """Spec §1 Bayes-check coordinates [N, 11]: ln D_on, ln D_ap, ln D_off, ln A, ln g6, lag6*Duchenne, ln irr,
  Duchenne, open, ln wr, ln head."""
  return np.array(
    [
      [
        np.log(lat.d_on),
        np.log(lat.d_ap),
        np.log(lat.d_off),
        np.log(lat.amplitude),
        np.log(lat.g6),
        lat.lag6 * lat.duchenne,
        np.log(lat.irr),
        float(lat.duchenne),
        float(lat.open_mouth),
        np.log(lat.wr),
        np.log(lat.head),
      ]
      for lat in latents
    ],
    np.float64,
  )
