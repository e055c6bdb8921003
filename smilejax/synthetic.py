"""The built-in synthetic smile corpus (spec: ../shared/spec/synthetic.md, normative).

A test bed, not a model of real smiles: it writes the same files a real dataset has (videos/<id>.mp4,
openface/<id>.csv, smile_intensities/<id>_smile_intensities.txt, folds/{P,S}_fold_all_k.txt) so the project's normal
readers, features and models run end to end without the licensed UvA-NEMO videos. Accuracies measured on it say
nothing about real smiles.

Pipeline per video (spec sections in brackets):
  subject traits [§1 subject effects, §2 rest baselines, §3 gains, §4 appearance]
  -> latent smile (durations, amplitude, Duchenne, ...) [§1]             : `sample_video_latents`
  -> 17 latent AU series X_TxA, envelope a(t) [§2]                        : `latent_au_series`
  -> OpenFace-like observation (gain, noise, drift, offsets, clip, failed frames, 3-frame average, 2 decimals) [§3]
                                                                          : `observe_openface`
  -> smile intensity SI [§3]                                              : `smile_intensity`
  -> rendered 64x64 RGB face, linear in X_TxA (independent noise) [§4]    : `render_frames`
  -> corpus files, folds, latent.csv, generator.json [§5]                 : `generate_corpus` / `ensure_corpus`

Determinism [§5]: every random draw comes from a NumPy Generator keyed by (seed, subject, kind, k, stream) through
`np.random.SeedSequence`, so adding subjects changes no existing video and the latent draws do not depend on the
rendering or observation options.

Implementation choices where the spec leaves room (each documented at its function):
- a clip longer than the limit first loses pre/post-roll (down to 0.3/0.4 s), then apex, then on/offset
  (`_fit_clip_length`); the tiny corpus's 4-s cap so keeps its smiles.
- the Gaussian blur (sigma 0.5 px) is applied analytically to shape edges and 1-px lines, and the sensor noise
  (SD 1.5) is an 8-bit-quantised normal from a lookup table (`_soft`, `_line`, `_NOISE_LUT`): same image
  statistics, a fraction of the cost.
- features are drawn in pixel windows around their place (`_render_chunk`), so one frame costs well under 1 ms.
- the CSV text format (decimals, separators) is the project writer's, `smilejax.io.openface.write_openface_csv`.

Deviation from the spec (its §3 check "inactive AUs >= 50 % exact zeros at rest" cannot be met with its own §2/§3
values: with the dynamic offset q = 0.3 and rest baselines 0.0/+0.1 the quiet AUs read exact zero in only 2-31 % of
rest frames). Measured against the real OpenFace file (../shared/data/real/OpenFace_Test.csv: AU05, 06, 07, 09, 10,
12, 14, 15, 17, 20, 25 read zero in 75-100 % of its frames; AU01, 02, 04, 23, 45 in 0-3 %), two [D] values changed:
- OpenFace keeps one cutoff per dynamic model, so the offset quantile is per AU: q = 0.8 for the dynamic AUs that are
  quiet through a whole clip (AU05, 09, 15, 17, 20: `QUIET_DYNAMIC_AUS`), the spec's q = 0.3 for the others (AU01/02
  keep their resting brow activity; AU25/26/45 keep their open-mouth and blink signals, which a high quantile taken
  over a clip that is mostly smile would remove);
- the resting baselines of the static AU07, AU10, AU14 have mean -0.2 instead of 0.1 / 0.0 / 0.1 (AU04 0.2 and
  AU06/AU12 -0.1 as specified), SD 0.35 as specified, so a minority of subjects still reads non-zero levels.
Result on the default draw (seed 0): exact-zero fractions at rest 0.40-0.75 per quiet AU, 0.57 pooled; AU01/02/04
levels, difference SDs, AU12/AU6 statistics and the latent classes unchanged (tests/test_synthetic.py).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from absl import logging

from smilejax import constants as C

GENERATOR_VERSION = "1.1.0"  # 1.1.0: quiet-AU cutoffs and static baselines (module docstring)

# ----------------------------------------------------------------------------------------------------------------
# Tables of spec section 1 (values [D], directions [M]); (posed median, spontaneous median, sigma of ln).
# ----------------------------------------------------------------------------------------------------------------
LOGNORMAL_LATENTS: dict[str, tuple[float, float, float]] = {
    "d_on": (0.45, 0.75, 0.38),       # onset duration, s
    "d_ap": (1.10, 1.50, 0.50),       # apex duration, s
    "d_off": (0.55, 1.00, 0.42),      # offset duration, s
    "amplitude": (2.40, 2.00, 0.25),  # A, AU12 amplitude (0-5), clipped to AMPLITUDE_CLIP
    "irr": (0.06, 0.08, 0.45),        # apex fluctuation SD / A
}
AMPLITUDE_CLIP = (0.6, 4.6)
TEMPO_SD = 0.18            # subject tempo u, added to ln D_on, ln D_ap, ln D_off
EXPRESSIVITY_SD = 0.15     # subject expressivity v, added to ln A
AGE_RANGE = (8.0, 76.0)    # years [M S6]
AGE_EFFECT = 0.05          # ln D += 0.05 (age-35)/30, ln A -= 0.05 (age-35)/30
DUCHENNE_OFFSET = (0.4, 1.4)          # logit = subject propensity N(0,1) + c
G6_DUCHENNE = (0.45, 0.60, 0.35)      # AU6 peak / A if Duchenne
G6_NON_DUCHENNE = (0.08, 0.08, 0.50)
LAG6 = ((0.15, 0.15), (0.04, 0.10))   # N(mean, sd) per class, s
OPEN_MOUTH_P = (0.45, 0.55)
WRINKLE = (0.35, 0.55, 0.55)          # wr, x0.3 if not Duchenne
WRINKLE_NON_DUCHENNE_FACTOR = 0.3
HEAD_PITCH = (0.7, 1.0, 0.6)          # deg
PRE_ROLL = (0.3, 1.0)                 # U(.,.) s
POST_ROLL = (0.4, 1.5)
APEX_FLUCTUATION_TAU_S = 0.4
MIN_APEX_S = 0.2                      # a clip cap shrinks the apex down to this, then the on/offset

# Spec section 2: static (person-independent) vs dynamic OpenFace intensity models [M S17].
STATIC_AUS = (4, 6, 7, 10, 12, 14)
STATIC_BASELINE_MEAN = {4: 0.2, 6: -0.1, 7: -0.2, 10: -0.2, 12: -0.1, 14: -0.2}  # deviation: docstring
STATIC_BASELINE_SD = 0.35
# Dynamic AUs with no activity through most of a clip: their per-model cutoff is a high quantile (module docstring).
QUIET_DYNAMIC_AUS = (5, 9, 15, 17, 20)
# Spec section 3: observation noise SD per AU (others 0.15).
NOISE_SD = {6: 0.10, 12: 0.10, 25: 0.20, 26: 0.20, 45: 0.25}
NOISE_SD_OTHER = 0.15
GAIN_SD_LN = {12: 0.15}
GAIN_SD_LN_OTHER = 0.20
DRIFT_TAU_S, DRIFT_SD = 1.5, 0.06

# Subject/video counts [§5].
POSED_COUNT_P = (0.45, 0.45, 0.10)              # 1, 2, 3 posed videos
SPONT_COUNT_P = (0.55, 0.40, 0.04, 0.01)        # 1..4 spontaneous videos
SPONT_GAP_P = 0.15                              # probability that spontaneous numbering skips one k [D]

# Random-stream keys: (seed, subject, kind, k, stream).
_KIND_SUBJECT, _KIND_POSED, _KIND_SPONT, _KIND_FOLDS = 0, 1, 2, 3
_S_LATENT, _S_AUS, _S_OBS, _S_SI, _S_RENDER = 0, 1, 2, 3, 4
_S_TRAITS = 0

_AU = C.AU_INDEX  # AU number -> column


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Generator options (spec §3-§5). Every field enters the config hash of generator.json."""

    n_subjects: int = 110
    fps: int = C.BASE_FPS
    min_clip_s: float = 2.0          # §1: clip length kept in [2, 10] s
    max_clip_s: float = 10.0
    image_size: int = 64             # §4: 64x64 RGB face crop
    crf: int = 10                    # §4: H.264 near-lossless (crf <= 12); 0 = lossless
    write_videos: bool = True
    clip_output: bool = True         # §3 step 3 (False: unclipped values, as the AUDA replication data)
    dynamic_offset_quantile: float = 0.3   # §3 step 2
    quiet_offset_quantile: float = 0.8     # §3 step 2 for QUIET_DYNAMIC_AUS (deviation: module docstring)
    failed_video_rate: float = 0.10  # §3 step 7
    bad_input_rate: float = 0.0      # §3 step 7: a 15-frame gap (error-path tests)


CONFIGS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(n_subjects=12, max_clip_s=4.0),
    "default": SyntheticConfig(n_subjects=110),
    "uvanemo": SyntheticConfig(n_subjects=400),
}


def get_config(size: str | SyntheticConfig = "default", **overrides: Any) -> SyntheticConfig:
    """The named config (`tiny`, `default`, `uvanemo`) with field overrides; raises InputError on bad input."""
    from smilejax.errors import InputError

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
        raise InputError(f"synthetic corpus: bad clip limits [{config.min_clip_s}, {config.max_clip_s}] s "
                         "(max must be >= 2 s)")
    if config.image_size < 16 or config.image_size % 2:
        raise InputError(f"synthetic corpus: image_size must be even and >= 16, got {config.image_size}")
    return config


def config_hash(config: SyntheticConfig, seed: int) -> str:
    """sha256 over the generator version, seed and every config field (the identity of a corpus)."""
    payload = json.dumps({"version": GENERATOR_VERSION, "seed": int(seed), "config": dataclasses.asdict(config)},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _rng(seed: int, subject: int, kind: int, k: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(subject), int(kind), int(k), int(stream)]))


def _kind_code(label: int) -> int:
    return _KIND_POSED if label == C.LABEL_POSED else _KIND_SPONT


def video_id(subject: int, label: int, k: int) -> str:
    """UvA-NEMO style id: `001_deliberate_smile_1` (posed) / `001_spontaneous_smile_2`."""
    kind = "deliberate" if label == C.LABEL_POSED else "spontaneous"
    return f"{subject:03d}_{kind}_smile_{k}"


# ----------------------------------------------------------------------------------------------------------------
# Subjects
# ----------------------------------------------------------------------------------------------------------------
SKIN_PALETTE = np.array([  # light to dark [D]
    (242, 215, 192), (232, 192, 162), (218, 172, 137), (198, 150, 112),
    (173, 124, 89), (142, 99, 70), (112, 76, 54), (86, 58, 43)], np.float32)
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
    ax: float                  # face ellipse semi-axes
    ay: float
    eye_dx: float              # eye centre distance from cx
    eye_y: float
    eye_rx: float
    eye_ry: float
    brow_y: float
    brow_thickness: float
    mouth_hw: float            # half width
    mouth_y: float
    nose_y: float
    light_gradient: float      # left-right multiplicative gradient, +-8 %
    age_line_contrast: float   # 0.1 max(0, (age-40)/36)


@dataclasses.dataclass(frozen=True)
class Subject:
    """Subject-level draws shared by all of a subject's videos (spec §1, §2, §3, §4, §5)."""

    subject: int
    age: float
    tempo: float               # u, added to ln D
    expressivity: float        # v, added to ln A
    duchenne_propensity: float
    static_baseline: dict      # AU number -> rest baseline of the static AUs
    gain_A: np.ndarray         # [17] per-AU observation gain
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
    scale = rng.uniform(0.92, 1.05)
    aspect = rng.uniform(-0.06, 0.06)
    ax, ay = 0.36 * scale * (1 + aspect / 2), 0.45 * scale * (1 - aspect / 2)
    cx = 0.5 + rng.uniform(-3.0, 3.0) / 64.0
    cy = 0.52 + rng.uniform(-3.0, 3.0) / 64.0
    jit = lambda: 1.0 + rng.uniform(-0.08, 0.08)  # noqa: E731  (+-8 % feature sizes)
    return Appearance(
        skin_rgb=tuple(float(c) for c in np.clip(skin, 40, 250)),
        hair_rgb=tuple(float(c) for c in np.clip(hair, 10, 230)),
        background=float(180.0 + rng.uniform(-15.0, 15.0)),
        cx=float(cx), cy=float(cy), ax=float(ax), ay=float(ay),
        eye_dx=float(0.40 * ax * jit()), eye_y=float(cy - 0.15 * ay),
        eye_rx=float(0.15 * ax), eye_ry=float(0.075 * ay),
        brow_y=float(cy - 0.31 * ay), brow_thickness=float(0.018 * jit()),
        mouth_hw=float(0.30 * ax * jit()), mouth_y=float(cy + 0.46 * ay), nose_y=float(cy + 0.20 * ay),
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
    rng = _rng(seed, subject, _KIND_SUBJECT, 0, _S_TRAITS)
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
    return Subject(subject=subject, age=age, tempo=tempo, expressivity=expressivity,
                   duchenne_propensity=propensity, static_baseline=baseline, gain_A=gain_A,
                   posed_ks=tuple(range(1, n_posed + 1)), spont_ks=tuple(spont_ks), appearance=appearance)


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


# Columns of latent.csv, in order (plus n_frames, n_failed written by the corpus writer).
LATENT_COLUMNS = ("id", "subject", "label", "age", "d_on", "d_ap", "d_off", "amplitude", "irr", "duchenne", "g6",
                  "lag6", "open_mouth", "wr", "head", "pre_roll", "post_roll")


def _fit_clip_length(pre: float, d_on: float, d_ap: float, d_off: float, post: float, *, min_s: float,
                     max_s: float) -> tuple[float, float, float, float, float]:
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
            cut = min(excess, max(0.0, post - POST_ROLL[0])); post -= cut
        elif name == "pre":
            cut = min(excess, max(0.0, pre - PRE_ROLL[0])); pre -= cut
        else:
            cut = min(excess, max(0.0, d_ap - MIN_APEX_S)); d_ap -= cut
        excess -= cut
    if excess > 0:
        scale = (d_on + d_off - excess) / (d_on + d_off)
        d_on, d_off = d_on * scale, d_off * scale
    return pre, d_on, d_ap, d_off, post


def sample_video_latents(seed: int, subject: Subject, label: int, k: int, *,
                         config: SyntheticConfig | None = None) -> VideoLatents:
    """Draw one video's latents (spec §1). A fixed vector of standard draws is taken first, so the values depend
    only on (seed, subject, label, k) and the tables, never on other options."""
    config = config or CONFIGS["default"]
    rng = _rng(seed, subject.subject, _kind_code(label), k, _S_LATENT)
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
    amplitude = min(max(lognormal("amplitude", z[3], subject.expressivity - age_term), AMPLITUDE_CLIP[0]),
                    AMPLITUDE_CLIP[1])
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
    pre, d_on, d_ap, d_off, post = _fit_clip_length(pre, d_on, d_ap, d_off, post, min_s=config.min_clip_s,
                                                    max_s=config.max_clip_s)
    return VideoLatents(id=video_id(subject.subject, label, k), subject=subject.subject, label=int(label), k=int(k),
                        age=subject.age, d_on=d_on, d_ap=d_ap, d_off=d_off, amplitude=amplitude, irr=irr,
                        duchenne=duchenne, g6=g6, lag6=lag6, open_mouth=open_mouth, wr=wr, head=head,
                        pre_roll=pre, post_roll=post)


def draw_latent_table(n_subjects: int, *, seed: int = 0, first_subject: int = 1,
                      config: SyntheticConfig | None = None) -> list[VideoLatents]:
    """Latents of every video of subjects first_subject.. (no rendering, no AU series): for the Bayes check."""
    out = []
    for s in range(first_subject, first_subject + n_subjects):
        subj = draw_subject(seed, s)
        out.extend(sample_video_latents(seed, subj, label, k, config=config) for label, k in subj.video_keys())
    return out


def bayes_features(latents: Sequence[VideoLatents]) -> np.ndarray:
    """Spec §1 Bayes-check coordinates [N, 11]: ln D_on, ln D_ap, ln D_off, ln A, ln g6, lag6*Duchenne, ln irr,
    Duchenne, open, ln wr, ln head."""
    return np.array([[np.log(l.d_on), np.log(l.d_ap), np.log(l.d_off), np.log(l.amplitude), np.log(l.g6),
                      l.lag6 * l.duchenne, np.log(l.irr), float(l.duchenne), float(l.open_mouth), np.log(l.wr),
                      np.log(l.head)] for l in latents], np.float64)


# ----------------------------------------------------------------------------------------------------------------
# Latent AU series (spec §1 time profile, §2 couplings)
# ----------------------------------------------------------------------------------------------------------------
def _ar1(rng: np.random.Generator, n: int, *, rho: float, sd: float, size: tuple[int, ...] = ()) -> np.ndarray:
    """Stationary AR(1): x_0 ~ N(0, sd^2), x_t = rho x_{t-1} + sqrt(1 - rho^2) sd z_t; shape size + (n,)."""
    from scipy import signal  # imported here: scipy.signal is slow to import and the CLI's error paths skip it

    z = rng.standard_normal(size + (n,))
    w = z * (sd * math.sqrt(1.0 - rho * rho))
    w[..., 0] = z[..., 0] * sd
    return signal.lfilter([1.0], [1.0, -rho], w, axis=-1)


def _rho(tau_s: float, fps: float) -> float:
    return math.exp(-1.0 / (tau_s * fps))


def envelope(t_T: np.ndarray, lat: VideoLatents) -> np.ndarray:
    """Lip-corner envelope a(t) in [0, 1] (spec §1): pre-roll 0, raised-cosine onset over D_on, plateau D_ap,
    raised-cosine offset over D_off, 0 after. a = (1 - cos(pi (t - t1)/D_on))/2 on the onset."""
    t1 = lat.pre_roll
    t2, t3 = t1 + lat.d_on, t1 + lat.d_on + lat.d_ap
    t4 = t3 + lat.d_off
    a = np.zeros_like(t_T, dtype=np.float64)
    on = (t_T >= t1) & (t_T < t2)
    a[on] = 0.5 * (1.0 - np.cos(np.pi * (t_T[on] - t1) / lat.d_on))
    a[(t_T >= t2) & (t_T < t3)] = 1.0
    off = (t_T >= t3) & (t_T < t4)
    a[off] = 0.5 * (1.0 + np.cos(np.pi * (t_T[off] - t3) / lat.d_off))
    return a


@dataclasses.dataclass(frozen=True)
class LatentSeries:
    """Latent (noise-free) series of one video (spec §2). X_TxA: the 17 AU drivers in constants order, before
    rest baselines, gain and noise; a_T: envelope; a_fluct_T: a(t)(1 + e(t)); a_lag_T: a(t - lag6); s12_T = A a
    (1+e)."""

    t_T: np.ndarray
    X_TxA: np.ndarray
    a_T: np.ndarray
    a_fluct_T: np.ndarray
    a_lag_T: np.ndarray
    s12_T: np.ndarray
    blink_rate_per_min: float
    jaw_drop: bool


def _pulse(t_T: np.ndarray, start: float, duration: float) -> np.ndarray:
    """Raised-cosine pulse of height 1 on [start, start + duration]."""
    x = (t_T - start) / duration
    return np.where((x >= 0) & (x <= 1), 0.5 * (1.0 - np.cos(2 * np.pi * np.clip(x, 0, 1))), 0.0)


def latent_au_series(seed: int, lat: VideoLatents, *, fps: float = C.BASE_FPS) -> LatentSeries:
    """The 17 latent AU drivers of spec §2 for one video."""
    rng = _rng(seed, lat.subject, _kind_code(lat.label), lat.k, _S_AUS)
    T = lat.n_frames(fps)
    t = np.arange(T) / fps
    a = envelope(t, lat)
    e = _ar1(rng, T, rho=_rho(APEX_FLUCTUATION_TAU_S, fps), sd=lat.irr)
    a_fl = a * np.maximum(0.0, 1.0 + e)
    # AU6 follows AU12 with delay lag6 (negative: leads); zero before the smile.
    a_fl_lag = np.interp(t - lat.lag6, t, a_fl, left=0.0, right=float(a_fl[-1]))
    a_lag = np.interp(t - lat.lag6, t, a, left=0.0, right=float(a[-1]))
    A = lat.amplitude
    s12 = A * a_fl
    s6 = lat.g6 * A * a_fl_lag
    X = np.zeros((T, C.NUM_AUS))
    X[:, _AU[12]] = s12
    X[:, _AU[6]] = s6 + 0.15 * s12 + 0.1 * lat.wr * a_lag
    X[:, _AU[7]] = 0.5 * s6
    X[:, _AU[10]] = 0.10 * s12 + (0.20 * s12 if lat.open_mouth else 0.0)
    X[:, _AU[14]] = 0.25 * s12
    X[:, _AU[20]] = 0.05 * s12
    X[:, _AU[4]] = 0.1 * s6
    X[:, _AU[5]] = -0.2 * s6
    X[:, _AU[9]] = 0.1 * s6
    jaw = bool(rng.random() < 0.5)
    X[:, _AU[25]] = 0.1 * s12 + (0.9 * A * a_fl ** 1.5 if lat.open_mouth else 0.0)
    if lat.open_mouth and jaw:
        X[:, _AU[26]] = 0.5 * A * a_fl ** 2
    # Brows: slow AR(1) activity (tau 1 s, SD 0.15, AU01/AU02 rho 0.8) and an occasional brow flash.
    brow = _ar1(rng, T, rho=_rho(1.0, fps), sd=0.15, size=(2,))
    X[:, _AU[1]] = brow[0]
    X[:, _AU[2]] = 0.8 * brow[0] + 0.6 * brow[1]
    flash_u = rng.random(3)
    if flash_u[0] < 0.1:
        flash = (0.5 + flash_u[1]) * _pulse(t, flash_u[2] * max(0.0, t[-1] - 0.4), 0.4)
        X[:, _AU[1]] += flash
        X[:, _AU[2]] += flash
    # "Smile controls" AU15/17/23: Bernoulli(0.15) per video, 0.3-0.8 for ~0.3 s near the offset.
    ctrl_u = rng.random(6)
    if ctrl_u[0] < 0.15:
        start = lat.pre_roll + lat.d_on + lat.d_ap + ctrl_u[1] * lat.d_off - 0.15
        dur = 0.25 + 0.15 * ctrl_u[2]
        for j, au in enumerate((15, 17, 23)):
            X[:, _AU[au]] += (0.3 + 0.5 * ctrl_u[3 + j]) * _pulse(t, start, dur)
    # AU45 blinks: Poisson, rate log-normal per video (median 15/min, sigma_ln 0.5); raised-cosine pulses of
    # 0.2-0.35 s, peak U(1.5, 3.0); plus eye narrowing 0.3 (AU06 + AU07 drivers).
    rate = float(15.0 * np.exp(0.5 * rng.standard_normal()))
    n_blinks = int(rng.poisson(rate * (T / fps) / 60.0))
    blink = np.zeros(T)
    for _ in range(n_blinks):
        start, dur, peak = rng.uniform(0.0, T / fps), rng.uniform(0.2, 0.35), rng.uniform(1.5, 3.0)
        blink = np.maximum(blink, peak * _pulse(t, start - dur / 2, dur))
    X[:, _AU[45]] = blink + 0.3 * (X[:, _AU[6]] + X[:, _AU[7]])
    return LatentSeries(t_T=t, X_TxA=X, a_T=a, a_fluct_T=a_fl, a_lag_T=a_lag, s12_T=s12,
                        blink_rate_per_min=rate, jaw_drop=bool(lat.open_mouth and jaw))


# ----------------------------------------------------------------------------------------------------------------
# OpenFace-like observation (spec §3) and SI
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Observation:
    """What OpenFace would print for one video (spec §3): au_TxA rounded to 2 decimals (constants order),
    success_T, confidence_T (2 decimals), presence_TxC (18 AU_c columns, constants.AU_PRESENCE_COLUMNS order)."""

    au_TxA: np.ndarray
    success_T: np.ndarray
    confidence_T: np.ndarray
    presence_TxC: np.ndarray


def _failed_frames(rng: np.random.Generator, T: int, config: SyntheticConfig) -> np.ndarray:
    """Spec §3 step 7: 10 % of videos get 1 + Poisson(0.5) gaps of U{1..6} frames, <= 5 % of the frames, kept at
    least one good frame apart (two touching gaps would make one run longer than the reader's 10-frame limit);
    `bad_input_rate` adds one 15-frame gap (beyond that limit)."""
    failed = np.zeros(T, bool)
    u = rng.random(3)
    n_gaps = 1 + int(rng.poisson(0.5))
    lengths = rng.integers(1, 7, size=n_gaps)
    starts = rng.random((n_gaps, 8))  # candidate places per gap; the first one clear of other gaps is used
    bad_start = rng.random()
    if u[0] < config.failed_video_rate:
        budget = int(0.05 * T)
        for length, cands in zip(lengths, starts):
            length = int(min(length, budget - failed.sum()))
            if length <= 0:
                break
            for c in cands:
                i0 = int(c * (T - length))
                if not failed[max(0, i0 - 1):i0 + length + 1].any():
                    failed[i0:i0 + length] = True
                    break
    if u[1] < config.bad_input_rate and T > 20:
        i0 = int(bad_start * (T - 15))
        failed[i0:i0 + 15] = True
    return failed


def observe_openface(seed: int, lat: VideoLatents, subject: Subject, series: LatentSeries, *,
                     config: SyntheticConfig) -> Observation:
    """Spec §3 steps 1-8: raw = gain X + eps + drift; static AUs + subject baseline, dynamic AUs - q-quantile of
    their successful raw values (q per AU, module docstring); clip [0, 5]; failed frames 0; centred 3-frame mean over interior frames; 2 dec."""
    rng = _rng(seed, lat.subject, _kind_code(lat.label), lat.k, _S_OBS)
    fps = config.fps
    X = series.X_TxA
    T = X.shape[0]
    sigma_A = np.array([NOISE_SD.get(n, NOISE_SD_OTHER) for n in C.AU_NUMBERS])
    eps = rng.standard_normal((T, C.NUM_AUS)) * sigma_A * (1.0 + 0.05 * np.abs(X))
    drift = _ar1(rng, T, rho=_rho(DRIFT_TAU_S, fps), sd=DRIFT_SD, size=(C.NUM_AUS,)).T
    failed = _failed_frames(rng, T, config)
    success = ~failed
    raw = subject.gain_A * X + eps + drift
    for n in C.AU_NUMBERS:
        j = _AU[n]
        if n in STATIC_AUS:
            raw[:, j] += subject.static_baseline[n]
        else:
            q = config.quiet_offset_quantile if n in QUIET_DYNAMIC_AUS else config.dynamic_offset_quantile
            raw[:, j] -= np.quantile(raw[success, j], q)
    if config.clip_output:
        raw = np.clip(raw, 0.0, 5.0)
    raw[failed] = 0.0
    out = raw.copy()
    if T >= 3:
        out[1:-1] = (raw[:-2] + raw[1:-1] + raw[2:]) / 3.0
    au = np.round(out, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    conf = np.where(success, np.minimum(0.98, rng.normal(0.97, 0.01, T)), rng.uniform(0.1, 0.6, T))
    conf = np.round(conf, 2)
    # AU_c presence: printed AU_r >= 1, flipped w.p. 0.05; AU28_c Bernoulli(0.02); 0 on failed frames.
    flips = rng.random((T, len(C.AU_PRESENCE_COLUMNS))) < 0.05
    au28 = rng.random(T) < 0.02
    presence = np.zeros((T, len(C.AU_PRESENCE_COLUMNS)))
    for ci, col in enumerate(C.AU_PRESENCE_COLUMNS):
        n = int(col[2:4])
        if n == 28:
            presence[:, ci] = au28
        else:
            presence[:, ci] = (au[:, _AU[n]] >= 1.0) ^ flips[:, ci]
    presence[failed] = 0.0
    return Observation(au_TxA=au, success_T=success, confidence_T=conf, presence_TxC=presence)


def smile_intensity(seed: int, lat: VideoLatents, series: LatentSeries, success_T: np.ndarray) -> np.ndarray:
    """Spec §3 SI: beta0 + beta1 tanh(s12 / 2.5) + n(t), beta0 ~ N(-0.010, 0.005^2), beta1 ~ N(0.042, 0.008^2),
    n AR(1) rho 0.6 SD 0.0012; sample-and-hold (repeat the previous value w.p. 0.25 and on failed frames);
    6 decimals."""
    rng = _rng(seed, lat.subject, _kind_code(lat.label), lat.k, _S_SI)
    T = len(series.s12_T)
    beta0 = rng.normal(-0.010, 0.005)
    beta1 = rng.normal(0.042, 0.008)
    noise = _ar1(rng, T, rho=0.6, sd=0.0012)
    si = beta0 + beta1 * np.tanh(series.s12_T / 2.5) + noise
    hold = (rng.random(T) < 0.25) | ~success_T
    hold[0] = False
    idx = np.where(hold, 0, np.arange(T))
    si = si[np.maximum.accumulate(idx)]
    return np.round(si, 6) + 0.0


# ----------------------------------------------------------------------------------------------------------------
# Rendering (spec §4)
# ----------------------------------------------------------------------------------------------------------------
# The Gaussian blur of spec §4 (sigma 0.5 px) is applied analytically to every shape edge instead of to the pixel
# grid: a pixel's box footprint (SD 1/sqrt(12) px) convolved with the blur has SD sqrt(1/12 + 0.25) = 0.577 px,
# which a linear edge ramp of width 2 px matches (SD 2/sqrt(12)); a 1-px line becomes a unit-area Gaussian profile
# of that SD (peak 0.69). Same image as area sampling + blur, at no extra cost per pixel.
_EDGE_RAMP_PX = 2.0
_LINE_SD_PX = math.sqrt(1.0 / 12.0 + 0.25)
# Sensor noise SD 1.5 grey levels: one random byte per sample through a normal-quantile table (8-bit-quantised
# N(0, 1.5^2), tails at +-2.7 SD); 10x cheaper than float normals, same SD.
_NOISE_LUT = np.array([statistics.NormalDist(0.0, 1.5).inv_cdf((i + 0.5) / 256.0) for i in range(256)], np.float32)
_NOISE_LUT_HALF = _NOISE_LUT + np.float32(0.5)  # + 0.5: the final cast to uint8 truncates


def _soft(sd_px):
    """Coverage from a signed distance in pixels (negative inside), with the blur-matched 2-px edge ramp."""
    return np.clip(0.5 - sd_px * (1.0 / _EDGE_RAMP_PX), 0.0, 1.0)


def _line(d_px):
    """Coverage of a 1-px wide line at distance d_px (blurred: unit-area Gaussian, SD 0.577 px)."""
    return np.exp(d_px * d_px * (-0.5 / _LINE_SD_PX ** 2)) * (1.0 / (_LINE_SD_PX * math.sqrt(2 * math.pi)))


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
    trans = _ar1(rng, T, rho=0.97, sd=0.5, size=(2,))
    roll = _ar1(rng, T, rho=0.97, sd=1.0)
    gain = 1.0 + _ar1(rng, T, rho=_rho(2.0, fps), sd=0.03)
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


def render_frames(ap: Appearance, X_TxA: np.ndarray, a_T: np.ndarray, a_lag_T: np.ndarray, *, wr: float,
                  head: float, nuisance: RenderNuisance, rng: np.random.Generator, size: int = 64,
                  chunk: int = 16) -> np.ndarray:
    """Render the face crop, uint8 [T, size, size, 3] (spec §4). Every displacement is linear in the latent AU
    values X_TxA (before gain and noise). Pixel-mostly cues: crow's-feet darkness 25 % wr a(t - lag6) (cap 40 %),
    head pitch shift head * 0.25 px/deg * a(t). Vectorised over a chunk of frames; features are drawn inside
    pixel windows around their nominal place (widened by the chunk's largest head motion)."""
    T = X_TxA.shape[0]
    out = np.empty((T, size, size, 3), np.uint8)
    for t0 in range(0, T, chunk):
        sl = slice(t0, min(T, t0 + chunk))
        out[sl] = _render_chunk(ap, X_TxA[sl], a_T[sl], a_lag_T[sl], wr=wr, head=head, alpha=nuisance.alpha,
                                dx_T=nuisance.dx_T[sl], dy_T=nuisance.dy_T[sl], roll_T=nuisance.roll_T[sl],
                                gain_T=nuisance.gain_T[sl], rng=rng, size=size)
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
    shift_y = dy_T - head * 0.25 * a  # px; the head tilts up with the smile
    theta = np.deg2rad(roll_T)
    cos, sin = col(np.cos(theta)), col(np.sin(theta))
    xu = g[None, None, :] - col(dx_T / P + ap.cx)
    yv = g[None, :, None] - col(shift_y / P + ap.cy)
    fu = cos * xu + sin * yv                 # [n, H, W], relative to the face centre
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
    head_m = _soft(((fu / (ap.ax * 1.07)) ** 2 + ((fv + 0.02) / (ap.ay * 1.04)) ** 2 - 1.0)
                   * (0.25 * P * (ap.ax + ap.ay)))
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

    # Brows (AU01 inner up, AU02 outer up, AU04 inner down and in).
    brow_col = 0.55 * hair + 0.45 * (0.35 * skin)
    w = box(ap.cx - 0.7 * ap.ax, ap.cx + 0.7 * ap.ax, ap.brow_y - 0.06, ap.brow_y + 0.04)
    for side in (-1.0, 1.0):
        xi = ap.cx + side * (0.12 * ap.ax - 0.015 * au[4])
        yi = ap.brow_y - 0.02 * au[1] + 0.015 * au[4]
        xo = ap.cx + side * 0.66 * ap.ax
        yo = ap.brow_y + 0.01 - 0.02 * au[2]
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
        blend(w, _soft(_ellipse_sd(x, y, ap.eye_rx * 1.08, ry + 0.010) * P) * 0.85, lash)      # lids, lashes
        sclera = _soft(_ellipse_sd(x, y, ap.eye_rx, np.maximum(ry, 1e-3)) * P) * np.clip(ry * P, 0.0, 1.0)
        blend(w, sclera, (235.0, 232.0, 228.0))
        blend(w, sclera * _soft((np.hypot(x, y) - 0.7 * ap.eye_ry) * P), (45.0, 35.0, 30.0))  # iris
        # Cheek highlight +8 % AU6/5 rising 0.03 AU6/5; lower-lid bulge shadow 6 % AU6/5.
        w = box(ex - 0.09, ex + 0.09, ap.eye_y + ap.eye_ry, ap.eye_y + 0.19)
        hy = ap.eye_y + 0.10 - 0.03 * au[6]
        blob = np.exp(((u[w] - ex) ** 2 + (v[w] - hy) ** 2) * (-0.5 / 0.045 ** 2))
        darken(w, blob, -0.08 * au[6])
        x = u[w] - ex
        d_lid = (v[w] - (ap.eye_y + ap.eye_ry + 0.016) - 0.01 * (x / ap.eye_rx) ** 2) * P
        darken(w, _soft(np.abs(d_lid) - 1.0) * (np.abs(x) < ap.eye_rx), 0.06 * au[6])
    # Crow's feet: 1-px lines, darkness 25 % wr a(t - lag6) capped at 40 %, plus the static age contrast.
    crow = np.minimum(0.25 * wr * col(a_lag), 0.40) + ap.age_line_contrast
    segs = crow_feet_segments(ap)
    for side, group in ((-1.0, segs[:3]), (1.0, segs[3:])):
        us = [s[0] for s in group] + [s[2] for s in group]
        vs = [s[1] for s in group] + [s[3] for s in group]
        w = box(min(us), max(us), min(vs), max(vs))
        d = np.minimum(np.minimum(_segment_dist(u[w], v[w], *group[0]), _segment_dist(u[w], v[w], *group[1])),
                       _segment_dist(u[w], v[w], *group[2]))
        darken(w, _line(d * P), crow)

    # Nose (static): a shading line and the nostrils.
    w = box(ap.cx - 0.05, ap.cx + 0.05, ap.eye_y, ap.nose_y + 0.02)
    d = _segment_dist(u[w], v[w], ap.cx + 0.02, ap.eye_y + 0.03, ap.cx + 0.03, ap.nose_y - 0.02) * P
    darken(w, _line(d), 0.12)
    for side in (-1.0, 1.0):
        darken(w, _soft(_ellipse_sd(u[w] - ap.cx - side * 0.03, v[w] - ap.nose_y, 0.014, 0.008) * P), 0.35)

    # Mouth: corners up 0.035 AU12/5 and out 0.02 AU12/5 (of the frame), per side x (1 +- alpha).
    my = ap.mouth_y
    uL = ap.cx - ap.mouth_hw - 0.02 * au[12] * (1 + alpha)
    uR = ap.cx + ap.mouth_hw + 0.02 * au[12] * (1 - alpha)
    vL = my - 0.035 * au[12] * (1 + alpha)
    vR = my - 0.035 * au[12] * (1 - alpha)
    # Nasolabial folds: darkening 10 % AU12/5 from the nose wings to just outside the mouth corners.
    for side, uc, vc in ((-1.0, uL, vL), (1.0, uR, vR)):
        w = box(*sorted((ap.cx + side * 0.05, ap.cx + side * (ap.mouth_hw + 0.05))), ap.nose_y - 0.01, my + 0.01)
        d = _segment_dist(u[w], v[w], ap.cx + side * 0.05, ap.nose_y - 0.005, uc + side * 0.02, vc + 0.005) * P
        darken(w, _soft(np.abs(d) - 1.0), 0.10 * au[12])
    w = box(ap.cx - ap.mouth_hw - 0.05, ap.cx + ap.mouth_hw + 0.05, my - 0.06, my + 0.07)
    uw, vw = u[w], v[w]
    um, vm = ap.cx, my + 0.004
    # Lip line: the parabola through both corners and the (fixed) middle point (Lagrange form).
    y_line = (vL * (uw - um) * (uw - uR) / ((uL - um) * (uL - uR))
              + vm * (uw - uL) * (uw - uR) / ((um - uL) * (um - uR))
              + vR * (uw - uL) * (uw - um) / ((uR - uL) * (uR - um)))
    hw = 0.5 * (uR - uL)
    s = (uw - 0.5 * (uL + uR)) / hw
    w_len = np.clip(1.0 - s * s, 0.0, 1.0)          # lens profile along the mouth
    inside = _soft((np.abs(s) - 1.0) * hw * P)       # horizontal extent, soft at the corners
    dv = np.abs(vw - y_line)
    gap = 0.04 * au[25] + 0.05 * au[26]              # lip gap
    half_gap = 0.5 * gap * w_len
    open_m = np.clip(gap * P, 0.0, 1.0)
    blend(w, inside * _soft((dv - half_gap - 0.016 * np.sqrt(w_len)) * P), skin * np.array([0.78, 0.55, 0.55], f32))
    blend(w, inside * _soft((dv - half_gap) * P) * open_m, (70.0, 30.0, 35.0))          # dark interior
    teeth = np.clip((au[10] + au[25] - 0.3) * (5.0 / 0.3), 0.0, 1.0)                   # AU10 + AU25 > 1.5
    top = y_line - half_gap
    tb = _soft(np.maximum(top - vw, vw - (top + 0.45 * gap * w_len)) * P) * open_m
    blend(w, inside * tb * teeth, (225.0, 222.0, 210.0))
    blend(w, inside * _line(dv * P) * (1.0 - open_m) * 0.8, (80.0, 35.0, 40.0))        # closed-lip line

    # Lighting gradient (+-8 %, left to right) and brightness gain AR(1) with the shading, then sensor noise.
    shade *= (1.0 + ap.light_gradient * (2.0 * g - 1.0))[None, None, :] * col(gain_T)
    img *= shade[..., None]
    img += _NOISE_LUT_HALF[np.frombuffer(rng.bytes(img.size), np.uint8).reshape(img.shape)]
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)  # noise + 0.5, then truncation: rounds to the nearest grey level

# ----------------------------------------------------------------------------------------------------------------
# One video, in memory
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SimulatedVideo:
    """One synthetic video in memory: latents, latent series, the OpenFace-like observation, SI and (optionally)
    the rendered frames uint8 [T, 64, 64, 3]."""

    latents: VideoLatents
    series: LatentSeries
    observation: Observation
    si_T: np.ndarray
    fps: float
    frames_TxHxWxC: np.ndarray | None = None
    nuisance: RenderNuisance | None = None  # always drawn (latent.csv records its asymmetry)

    @property
    def id(self) -> str:
        return self.latents.id

    @property
    def label(self) -> int:
        return self.latents.label

    @property
    def subject(self) -> int:
        return self.latents.subject

    @property
    def au_TxA(self) -> np.ndarray:
        return self.observation.au_TxA

    @property
    def timestamps_T(self) -> np.ndarray:
        return np.round(np.arange(len(self.si_T)) / self.fps, 3)


def simulate_video(seed: int, subject: Subject, label: int, k: int, *, config: SyntheticConfig,
                   render: bool = True, wr: float | None = None) -> SimulatedVideo:
    """Latents -> AU series -> observation -> SI (-> frames when `render`). `wr` overrides the crow's-feet
    latent in the rendering only (for the wrinkle-cue check of spec §6.5)."""
    lat = sample_video_latents(seed, subject, label, k, config=config)
    series = latent_au_series(seed, lat, fps=config.fps)
    obs = observe_openface(seed, lat, subject, series, config=config)
    si = smile_intensity(seed, lat, series, obs.success_T)
    # The render nuisances are drawn even without rendering (cheap), so latent.csv is the same either way.
    rng = _rng(seed, lat.subject, _kind_code(label), k, _S_RENDER)
    nuisance = draw_render_nuisance(rng, len(si), config.fps)
    frames = None
    if render:
        frames = render_frames(subject.appearance, series.X_TxA, series.a_T, series.a_lag_T,
                               wr=lat.wr if wr is None else wr, head=lat.head, nuisance=nuisance, rng=rng,
                               size=config.image_size)
    return SimulatedVideo(latents=lat, series=series, observation=obs, si_T=si, fps=float(config.fps),
                          frames_TxHxWxC=frames, nuisance=nuisance)


def simulate_series(n_subjects: int | None = None, *, size: str = "default", seed: int = 0,
                    first_subject: int = 1, **overrides: Any) -> list[SimulatedVideo]:
    """AU/SI series of a whole corpus draw in memory, without rendering or writing files (the same values the
    corpus files would hold for these subjects)."""
    config = get_config(size, **overrides)
    n = config.n_subjects if n_subjects is None else n_subjects
    out = []
    for s in range(first_subject, first_subject + n):
        subj = draw_subject(seed, s)
        out.extend(simulate_video(seed, subj, label, k, config=config, render=False)
                   for label, k in subj.video_keys())
    return out


# ----------------------------------------------------------------------------------------------------------------
# Corpus on disk (spec §5)
# ----------------------------------------------------------------------------------------------------------------
GENERATOR_JSON = "generator.json"
LATENT_CSV = "latent.csv"


def assign_folds(videos_by_subject: dict[int, list[str]], *, seed: int,
                 n_folds: int = C.NUM_FOLDS) -> dict[int, list[str]]:
    """Spec §5: shuffle subjects with the seed, give each to the fold with the fewest videos (lowest fold on
    ties). Returns fold k (1-based) -> sorted ids of both classes."""
    rng = _rng(seed, 0, _KIND_FOLDS, 0, 0)
    subjects = sorted(videos_by_subject)
    order = rng.permutation(len(subjects))
    folds: dict[int, list[str]] = {k: [] for k in range(1, n_folds + 1)}
    for i in order:
        ids = videos_by_subject[subjects[i]]
        k = min(folds, key=lambda f: (len(folds[f]), f))
        folds[k].extend(ids)
    return {k: sorted(v) for k, v in folds.items()}


def _fmt(x: Any) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6f}"
    return str(x)


def _latent_row(sim: SimulatedVideo) -> dict[str, Any]:
    lat = sim.latents
    row = {c: getattr(lat, c) for c in LATENT_COLUMNS}
    row.update(n_frames=len(sim.si_T), n_failed=int((~sim.observation.success_T).sum()),
               blink_rate=sim.series.blink_rate_per_min, jaw_drop=sim.series.jaw_drop,
               asymmetry=sim.nuisance.alpha)
    return row


def _write_latent_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    lines = [",".join(cols)] + [",".join(_fmt(r[c]) for c in cols) for r in sorted(rows, key=lambda r: r["id"])]
    path.write_text("\n".join(lines) + "\n")


def read_latent_csv(path: str | os.PathLike) -> dict[str, dict[str, float | str]]:
    """latent.csv -> id -> {column: value} (debugging and the Bayes check only; no model reads it)."""
    lines = Path(path).read_text().splitlines()
    cols = lines[0].split(",")
    out = {}
    for line in lines[1:]:
        vals = line.split(",")
        row = {c: (v if c == "id" else float(v)) for c, v in zip(cols, vals)}
        out[row["id"]] = row
    return out


def write_video_files(root: Path, sim: SimulatedVideo, config: SyntheticConfig) -> None:
    """The per-video files of the corpus layout (constants.*_DIR), through the project's io writers."""
    from smilejax.io.intensity import write_smile_intensity
    from smilejax.io.openface import write_openface_csv

    obs = sim.observation
    write_openface_csv(root / C.OPENFACE_DIR / f"{sim.id}.csv", obs.au_TxA, timestamps_T=sim.timestamps_T,
                       success_T=obs.success_T, confidence_T=obs.confidence_T, presence_TxC=obs.presence_TxC,
                       face_id=True, decimals=2)
    write_smile_intensity(root / C.SMILE_INTENSITY_DIR / f"{sim.id}{C.SMILE_INTENSITY_SUFFIX}", sim.si_T)
    if config.write_videos and sim.frames_TxHxWxC is not None:
        from smilejax.io.video import write_video

        write_video(root / C.VIDEO_DIR / f"{sim.id}.mp4", sim.frames_TxHxWxC, fps=config.fps, crf=config.crf)


def _generate_one(task: tuple[str, int, dict, int, int, int]) -> dict[str, Any]:
    """Worker: simulate one video and write its files; returns its latent.csv row."""
    root, seed, config_dict, subject, label, k = task
    config = SyntheticConfig(**config_dict)
    subj = draw_subject(seed, subject)
    sim = simulate_video(seed, subj, label, k, config=config, render=config.write_videos)
    write_video_files(Path(root), sim, config)
    return _latent_row(sim)


def _expected_files(root: Path, ids: Iterable[str], config: SyntheticConfig) -> list[Path]:
    files = []
    for vid in ids:
        files.append(root / C.OPENFACE_DIR / f"{vid}.csv")
        files.append(root / C.SMILE_INTENSITY_DIR / f"{vid}{C.SMILE_INTENSITY_SUFFIX}")
        if config.write_videos:
            files.append(root / C.VIDEO_DIR / f"{vid}.mp4")
    for k in range(1, C.NUM_FOLDS + 1):
        files += [root / C.FOLDS_DIR / f"P_fold_all_{k}.txt", root / C.FOLDS_DIR / f"S_fold_all_{k}.txt"]
    return files


def generator_info(config: SyntheticConfig, seed: int, size: str | None = None) -> dict[str, Any]:
    """The content of generator.json (no timestamps, so it is byte-identical for the same seed and config)."""
    return {"generator": "smilejax.synthetic", "version": GENERATOR_VERSION, "seed": int(seed), "size": size,
            "config": dataclasses.asdict(config), "config_hash": config_hash(config, seed)}


def is_complete_corpus(root: str | os.PathLike, info: dict[str, Any] | None = None) -> bool:
    """True if root holds a finished synthetic corpus (generator.json, latent.csv and every listed file) and,
    when `info` is given, its generator.json has the same config hash."""
    root = Path(root)
    try:
        have = json.loads((root / GENERATOR_JSON).read_text())
        config = SyntheticConfig(**have["config"])
        ids = read_latent_csv(root / LATENT_CSV).keys()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if info is not None and have.get("config_hash") != info["config_hash"]:
        return False
    return all(p.is_file() for p in _expected_files(root, ids, config))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def generate_corpus(out_dir: str | os.PathLike, *, config: SyntheticConfig, seed: int = 0,
                    size: str | None = None, n_workers: int | None = None, progress: bool = True) -> float:
    """Write a complete corpus into the (new or empty) folder out_dir; returns the wall time in seconds.
    Files: videos/, openface/, smile_intensities/, folds/, latent.csv, generator.json (written last)."""
    out = Path(out_dir)
    t_start = time.perf_counter()
    for d in (C.VIDEO_DIR, C.OPENFACE_DIR, C.SMILE_INTENSITY_DIR, C.FOLDS_DIR):
        (out / d).mkdir(parents=True, exist_ok=True)
    subjects = [draw_subject(seed, s) for s in range(1, config.n_subjects + 1)]
    tasks = [(str(out), int(seed), dataclasses.asdict(config), s.subject, label, k)
             for s in subjects for label, k in s.video_keys()]
    n = len(tasks)
    if n_workers is None:
        n_workers = min(2, os.cpu_count() or 1)
    n_workers = max(1, min(n_workers, n))
    logging.info("synthetic corpus: %d subjects, %d videos -> %s (%d worker%s)", config.n_subjects, n, out,
                 n_workers, "s" if n_workers > 1 else "")
    rows: list[dict[str, Any]] = []
    step = max(1, n // 10)

    def report(done: int) -> None:
        if progress and (done % step == 0 or done == n):
            logging.info("synthetic corpus: %d/%d videos (%.0f%%), %.1f s", done, n, 100.0 * done / n,
                         time.perf_counter() - t_start)

    if n_workers == 1:
        for i, task in enumerate(tasks, 1):
            rows.append(_generate_one(task))
            report(i)
    else:
        # spawn, not fork: the parent may hold JAX/XLA threads, which fork does not copy safely.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            futures = [pool.submit(_generate_one, t) for t in tasks]
            try:
                for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                    rows.append(fut.result())
                    report(i)
            except BaseException:
                for fut in futures:  # fail fast: do not run the remaining videos on the way out
                    fut.cancel()
                raise
    by_subject: dict[int, list[str]] = {}
    for r in rows:
        by_subject.setdefault(int(r["subject"]), []).append(r["id"])
    folds = assign_folds(by_subject, seed=seed)
    from smilejax.io.nemo import write_fold_lists

    write_fold_lists(out / C.FOLDS_DIR, folds)
    _write_latent_csv(out / LATENT_CSV, rows)
    (out / GENERATOR_JSON).write_text(json.dumps(generator_info(config, seed, size), indent=2, sort_keys=True)
                                      + "\n")
    elapsed = time.perf_counter() - t_start
    n_frames = sum(int(r["n_frames"]) for r in rows)
    logging.info("synthetic corpus: %d videos, %d frames written in %.1f s", n, n_frames, elapsed)
    return elapsed


def ensure_corpus(root: str | os.PathLike, *, size: str = "default", seed: int = 0, overwrite: bool = False,
                  n_workers: int | None = None, progress: bool = True, **overrides: Any) -> Path:
    """Return root, generating the synthetic corpus there first unless root already holds a complete corpus
    with the same generator.json (config hash). Generation goes to a temporary sibling folder that is renamed
    into place at the end, so an interrupted run never looks finished. `overwrite=True` regenerates anyway and
    also replaces a folder that is not a synthetic corpus (otherwise that is an InputError)."""
    from smilejax.errors import InputError

    root = Path(root).absolute()
    config = get_config(size, **overrides)
    info = generator_info(config, seed, size if isinstance(size, str) else None)
    if not overwrite and is_complete_corpus(root, info):
        logging.info("synthetic corpus: %s is complete (config %s)", root, info["config_hash"])
        return root
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    if (root.is_dir() and any(root.iterdir()) and not (root / GENERATOR_JSON).exists()
            and not overwrite):
        raise InputError(f"{root}: folder is not empty and holds no synthetic corpus "
                         "(overwrite=True / --overwrite replaces it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{root.name}.partial-"
    for stale in root.parent.glob(prefix + "*"):  # left by killed runs
        pid = stale.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = root.parent / f"{prefix}{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        generate_corpus(tmp, config=config, seed=seed, size=info["size"], n_workers=n_workers, progress=progress)
        if not overwrite and is_complete_corpus(root, info):  # a concurrent run finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return root
        old = None
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}-{time.time_ns()}"
            root.rename(old)
        tmp.rename(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


# ----------------------------------------------------------------------------------------------------------------
# Example figure (docs/synthetic_example.png)
# ----------------------------------------------------------------------------------------------------------------
def write_example_figure(path: str | os.PathLike, *, seed: int = 0, subject: int = 49, n_frames_shown: int = 6,
                         size: str = "default") -> Path:
    """A posed and a spontaneous synthetic smile of one subject: frames side by side (times marked) and the
    observed AU12 / AU6 series (what the OpenFace CSV holds) with the latent phases shaded. Matplotlib, Agg.

        python -c "from smilejax import synthetic; synthetic.write_example_figure('docs/synthetic_example.png')"
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = get_config(size)
    subj = draw_subject(seed, subject)
    keys = [(C.LABEL_POSED, subj.posed_ks[0]), (C.LABEL_SPONTANEOUS, subj.spont_ks[0])]
    sims = [simulate_video(seed, subj, label, k, config=config) for label, k in keys]
    fig = plt.figure(figsize=(11, 8.2), dpi=110)
    outer = fig.add_gridspec(2, 1, hspace=0.38, top=0.88, bottom=0.06, left=0.06, right=0.98)
    t_max = max(len(s.si_T) for s in sims) / config.fps
    for row, sim in enumerate(sims):
        lat = sim.latents
        g = outer[row].subgridspec(2, n_frames_shown, height_ratios=(1.0, 1.05), hspace=0.12, wspace=0.04)
        T = len(sim.si_T)
        t_on, t_ap = lat.pre_roll, lat.pre_roll + lat.d_on
        t_off, t_end = t_ap + lat.d_ap, t_ap + lat.d_ap + lat.d_off
        shown = np.linspace(0.1, 0.92 * T / config.fps, n_frames_shown)
        shown = np.concatenate([[0.0], [t_on + 0.5 * lat.d_on], [t_ap + 0.5 * lat.d_ap], [t_off + 0.5 * lat.d_off],
                                [t_end + 0.3 * lat.post_roll], [T / config.fps - 0.02]])[:n_frames_shown] \
            if n_frames_shown == 6 else shown
        idx = np.clip(np.round(shown * config.fps).astype(int), 0, T - 1)
        for j, i in enumerate(idx):
            ax = fig.add_subplot(g[0, j])
            ax.imshow(sim.frames_TxHxWxC[i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"t = {i / config.fps:.2f} s", fontsize=7, pad=2)
        ax = fig.add_subplot(g[1, :])
        t = np.arange(T) / config.fps
        for (a, b), colour, name in (((t_on, t_ap), "#fde0c5", "onset"), ((t_ap, t_off), "#e6f2d9", "apex"),
                                     ((t_off, t_end), "#dbe6f5", "offset")):
            ax.axvspan(a, b, color=colour, lw=0)
            ax.text((a + b) / 2, 0.02, name, ha="center", va="bottom", fontsize=7, color="0.35",
                    transform=ax.get_xaxis_transform())
        ax.plot(t, sim.au_TxA[:, C.AU_INDEX[12]], color="#c0392b", lw=1.3, label="AU12_r (lip corner puller)")
        ax.plot(t, sim.au_TxA[:, C.AU_INDEX[6]], color="#2471a3", lw=1.3, label="AU06_r (cheek raiser)")
        for i in idx:
            ax.axvline(i / config.fps, color="0.5", lw=0.6, ls=":")
        ax.set_xlim(0, t_max)
        ax.set_ylim(0, max(3.5, float(sim.au_TxA[:, C.AU_INDEX[12]].max()) + 0.3))
        ax.set_ylabel("intensity (0-5)", fontsize=8)
        ax.tick_params(labelsize=7)
        if row == 1:
            ax.set_xlabel("time (s), 50 fps", fontsize=8)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
        kind = "POSED" if lat.label == C.LABEL_POSED else "SPONTANEOUS"
        fig.text(0.06, outer[row].get_position(fig).y1 + 0.03,
                 f"{kind}  {lat.id}:  onset {lat.d_on:.2f} s, apex {lat.d_ap:.2f} s, offset {lat.d_off:.2f} s, "
                 f"A {lat.amplitude:.2f}, Duchenne {'yes' if lat.duchenne else 'no'} (AU6 lag {lat.lag6:+.2f} s), "
                 f"wr {lat.wr:.2f}", fontsize=9, weight="bold")
    fig.suptitle("smilejax synthetic smile corpus: a test bed with known ground truth, not real faces",
                 fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def benchmark_render(n_subjects: int = 10, *, seed: int = 0, repeats: int = 3) -> dict[str, float]:
    """Rendering speed over the videos of the first n_subjects subjects of the default draw (the AU series are
    made first and not timed): best-of-`repeats` wall ms/frame and the matching CPU ms/frame.

        python -c "from smilejax import synthetic; print(synthetic.benchmark_render())"
    """
    config = get_config("default")
    jobs = []
    for s in range(1, n_subjects + 1):
        subj = draw_subject(seed, s)
        jobs += [(subj, simulate_video(seed, subj, label, k, config=config, render=False))
                 for label, k in subj.video_keys()]
    n_frames = sum(len(sim.si_T) for _, sim in jobs)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for subj, sim in jobs:
            render_frames(subj.appearance, sim.series.X_TxA, sim.series.a_T, sim.series.a_lag_T, wr=sim.latents.wr,
                          head=sim.latents.head, nuisance=sim.nuisance, rng=np.random.default_rng(0),
                          size=config.image_size)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return {"frames": float(n_frames), "ms_per_frame_wall": 1000.0 * best_wall / n_frames,
            "ms_per_frame_cpu": 1000.0 * best_cpu / n_frames}
