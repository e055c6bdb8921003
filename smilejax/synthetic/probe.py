"""What the rendered pixels carry (synthetic.md §6.7, §6.8): measurements on a synthetic corpus's videos as
RealSmileNet sees them (decoded mp4, bicubic 64 -> 48, every 5th frame at 50 fps), and a pixel-only class probe.

- :func:`visible_smile` / :func:`visible_smile_medians` (§6.7): outer-eye distance, mouth-corner travel, onset-peak
  mouth frame difference over rest, open-smile lip gap.
- :func:`pixel_features` / :func:`pixel_probe_accuracy` (§6.8): hand-made features from pixels only (no latents), and
  a subject-disjoint 10-fold logistic regression on them over the corpus's own fold lists.
- :func:`fit_logistic`, :func:`quadratic_features`: the NumPy/SciPy logistic regression the acceptance checks share.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from scipy import optimize

from smilejax import constants as C
from smilejax.io import nemo as nemo_io
from smilejax.io.video import read_video, resize_frames
from smilejax.sequences import default_frame_stride, sample_frame_indices
from smilejax.synthetic.corpus import GENERATOR_JSON, LATENT_CSV, read_latent_csv
from smilejax.synthetic.latents import Appearance, draw_subject
from smilejax.synthetic.render import LIP_GAP_AU25, LIP_GAP_AU26, MOUTH_CORNER_OUT, MOUTH_CORNER_UP

PROBE_SIZE = 48  # RealSmileNet's frame size
# Fixed regions of the framing spec (§4), fractions of the frame (rows, cols as [start, stop)): the face is framed
# within +-2 px at 64x64, so these hold for every subject without a detector.
MOUTH_ROWS, MOUTH_COLS = (0.64, 0.84), (0.27, 0.73)  # mouth near 0.75 of the height, inside the jaw line
EYE_ROWS, EYE_COLS = (0.33, 0.48), (0.12, 0.88)  # eyes near 0.40 of the height
CORNER_ROWS, CORNER_HALF_COLS = (0.35, 0.46), (0.275, 0.36)  # outer eye corners ~0.265 of the width from centre
SHIFT_ROWS, SHIFT_COLS = (0.0, 0.62), (0.3, 0.7)  # hairline, brows, eyes, nose: moves only with the head
FACE_ROWS, FACE_COLS = (0.1, 0.9), (0.1, 0.9)  # brightness reference (the gain drift scales the whole frame)
MAX_SHIFT_PX, SHIFT_STEP_PX = 3.0, 0.05


# ----------------------------------------------------------------------------------------------------------------
# Logistic regression (shared by the acceptance checks)
# ----------------------------------------------------------------------------------------------------------------
def fit_logistic(X, y, *, l2=1e-3):
  """L2-regularised logistic regression on standardised features (SciPy L-BFGS); returns the decision function
  A -> A_std @ w + b (> 0: class 1). Used by the Bayes check (§6.1), the AU baseline (§6.4) and the pixel probe
  (§6.8)."""
  X = np.asarray(X, float)
  y = np.asarray(y, float)
  mu, sd = X.mean(0), X.std(0) + 1e-9

  def design(A):
    return np.hstack([(np.asarray(A, float) - mu) / sd, np.ones((len(A), 1))])

  Z = design(X)

  def loss(w):
    z = Z @ w
    p = 1.0 / (1.0 + np.exp(-z))
    g = Z.T @ (p - y) / len(y)
    g[:-1] += 2 * l2 * w[:-1]
    return np.mean(np.logaddexp(0.0, z) - y * z) + l2 * np.sum(w[:-1] ** 2), g

  w = optimize.minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 3000}).x
  return lambda A: design(A) @ w


def quadratic_features(X):
  """[N, F] -> [N, F + F(F+1)/2]: the features and all their pairwise products (squares included)."""
  X = np.asarray(X, float)
  iu = np.triu_indices(X.shape[1])
  return np.hstack([X, (X[:, :, None] * X[:, None, :])[:, iu[0], iu[1]]])


# ----------------------------------------------------------------------------------------------------------------
# Frames as RealSmileNet sees them
# ----------------------------------------------------------------------------------------------------------------
def sampled_frames(video_path, *, size=PROBE_SIZE):
  """Decoded mp4 -> every round(fps/10)-th frame (``sequences.sample_frame_indices``) -> bicubic size x size, as
  ``data.load_video`` gives RealSmileNet. Returns (uint8 [T', size, size, 3], frame indices [T'], video fps)."""
  video = read_video(video_path)
  idx = sample_frame_indices(video.n_frames, default_frame_stride(video.fps))
  return resize_frames(video.frames_TxHxWxC[idx], size), idx, float(video.fps)


def _grey(frames_TxHxWxC):
  return np.asarray(frames_TxHxWxC, np.float64).mean(-1)


def _window(frac_rows, frac_cols, H, W):
  r0, r1 = int(round(frac_rows[0] * H)), int(round(frac_rows[1] * H))
  c0, c1 = int(round(frac_cols[0] * W)), int(round(frac_cols[1] * W))
  return slice(r0, r1), slice(c0, c1)


def region_difference_energy(frames_TxHxWxC, frac_rows, frac_cols):
  """Mean |frame difference| (grey levels, channel mean) inside a fixed region between consecutive frames:
  [T - 1], entry t = frames t -> t + 1."""
  g_TxHxW = _grey(frames_TxHxWxC)
  rows, cols = _window(frac_rows, frac_cols, *g_TxHxW.shape[1:])
  r_TxHxW = g_TxHxW[:, rows, cols]
  return np.abs(np.diff(r_TxHxW, axis=0)).mean((1, 2))


# ----------------------------------------------------------------------------------------------------------------
# §6.7 Visible smile
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VisibleSmile:
  """One video's visible smile at size x size (§6.7). Geometry-derived: eye_distance_px, corner_travel_px,
  lip_gap_px (NaN for closed-mouth smiles); measured from decoded pixels: onset_peak_diff, rest_diff and
  onset_over_rest (NaN when the pre-roll holds no sampled frame pair)."""

  id: str
  eye_distance_px: float
  corner_travel_px: float
  lip_gap_px: float
  onset_peak_diff: float
  rest_diff: float
  onset_over_rest: float


def visible_smile(video_path, appearance: Appearance, latent: dict, *, size=PROBE_SIZE) -> VisibleSmile:
  """Spec §6.7 for one video, as RealSmileNet sees it (decoded, size x size bicubic, every 5th frame at 50 fps).

  - eye_distance_px: outer eye corners apart, from the subject's ``Appearance`` geometry: 2 (eye_dx + eye_rx)
    x size (the renderer draws the eyes at exactly that place; head roll and translation move both corners alike).
  - corner_travel_px: mouth-corner displacement neutral -> apex relative to the face, from the geometry: the renderer
    moves each corner up ``MOUTH_CORNER_UP`` and out ``MOUTH_CORNER_OUT`` per AU12/5, per side x (1 +- alpha), so the
    mean of both sides is hypot(UP, OUT) x A/5 x size with A the latent AU12 at apex (latent.csv ``amplitude``).
  - onset_over_rest: measured from decoded pixels: the mouth-region mean |frame difference| between consecutive
    sampled frames, its maximum over the onset (latent pre_roll .. pre_roll + d_on, one step of slack either side)
    divided by its mean over step pairs inside the pre-roll (rest).
  - lip_gap_px (open-mouth smiles only, else NaN): from the geometry, (LIP_GAP_AU25 AU25 + LIP_GAP_AU26 AU26)/5 x
    size at apex, with the latent AU25 = A (0.1 A + 0.9 A) and AU26 = 0.5 A when the jaw drops (spec §2).
  """
  ap = appearance
  A = float(latent["amplitude"])
  eye = 2.0 * (ap.eye_dx + ap.eye_rx) * size
  travel = math.hypot(MOUTH_CORNER_UP, MOUTH_CORNER_OUT) * A / 5.0 * size
  gap = math.nan
  if latent["open_mouth"]:
    au25, au26 = A, 0.5 * A * float(latent["jaw_drop"])
    gap = (LIP_GAP_AU25 * au25 + LIP_GAP_AU26 * au26) / 5.0 * size
  frames, idx, fps = sampled_frames(video_path, size=size)
  e_T = region_difference_energy(frames, MOUTH_ROWS, MOUTH_COLS)  # step t: frames idx[t] -> idx[t + 1]
  t0_T, t1_T = idx[:-1] / fps, idx[1:] / fps
  pre, d_on = float(latent["pre_roll"]), float(latent["d_on"])
  step = (idx[1] - idx[0]) / fps if len(idx) > 1 else 0.1
  onset = (t1_T > pre - step) & (t0_T < pre + d_on + step)
  rest = t1_T <= pre
  peak = float(e_T[onset].max()) if onset.any() else math.nan
  rest_level = float(e_T[rest].mean()) if rest.any() else math.nan
  return VisibleSmile(
    id=str(latent["id"]),
    eye_distance_px=float(eye),
    corner_travel_px=float(travel),
    lip_gap_px=float(gap),
    onset_peak_diff=peak,
    rest_diff=rest_level,
    onset_over_rest=peak / rest_level if rest_level > 0 else math.nan,
  )


def corpus_seed(corpus_root) -> int:
  """The generator seed of a synthetic corpus (its generator.json)."""
  return int(json.loads((Path(corpus_root) / GENERATOR_JSON).read_text())["seed"])


def corpus_visible_smile(corpus_root, *, size=PROBE_SIZE) -> list[VisibleSmile]:
  """:func:`visible_smile` for every video of a synthetic corpus folder (appearance from its seed, latents from
  latent.csv), in id order."""
  root = Path(corpus_root)
  seed = corpus_seed(root)
  latent = read_latent_csv(root / LATENT_CSV)
  appearance: dict[int, Appearance] = {}
  out = []
  for vid in sorted(latent):
    row = latent[vid]
    subject = int(row["subject"])
    if subject not in appearance:
      appearance[subject] = draw_subject(seed, subject).appearance
    out.append(visible_smile(root / C.VIDEO_DIR / f"{vid}.mp4", appearance[subject], row, size=size))
  return out


def visible_smile_medians(corpus_root, *, size=PROBE_SIZE) -> dict[str, float]:
  """Spec §6.7 medians over a corpus folder: eye_distance_px, corner_travel_px, onset_over_rest, lip_gap_px (open
  smiles only), and the counts n_videos, n_open."""
  vs = corpus_visible_smile(corpus_root, size=size)

  def med(name):
    x = np.array([getattr(v, name) for v in vs], float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else math.nan

  return {
    "eye_distance_px": med("eye_distance_px"),
    "corner_travel_px": med("corner_travel_px"),
    "onset_over_rest": med("onset_over_rest"),
    "lip_gap_px": med("lip_gap_px"),
    "n_videos": len(vs),
    "n_open": int(sum(math.isfinite(v.lip_gap_px) for v in vs)),
  }


# ----------------------------------------------------------------------------------------------------------------
# §6.8 Pixel-only features and the class probe
# ----------------------------------------------------------------------------------------------------------------
def vertical_shift(profile_ref_H, profile_H, *, max_shift=MAX_SHIFT_PX, step=SHIFT_STEP_PX):
  """Sub-pixel vertical shift (px, + = down) that best maps the reference row profile onto another: the minimum
  of the mean squared difference (means removed) between ``profile_H`` and ``profile_ref_H`` shifted by s (linear
  interpolation) over s in [-max_shift, max_shift] on a ``step`` grid, refined by a parabola through the best three."""
  ref = np.asarray(profile_ref_H, float)
  cur = np.asarray(profile_H, float)
  H = len(ref)
  shifts_S = np.arange(-max_shift, max_shift + step / 2, step)
  m = int(math.ceil(max_shift)) + 1
  y_R = np.arange(m, H - m, dtype=float)  # rows compared (every shifted source row inside the profile)
  src_SxR = np.interp(y_R[None, :] - shifts_S[:, None], np.arange(H), ref)  # ref moved down by s
  cur_R = cur[m : H - m]
  d_SxR = (cur_R - cur_R.mean())[None, :] - (src_SxR - src_SxR.mean(1, keepdims=True))
  sse_S = (d_SxR**2).mean(1)
  i = int(np.argmin(sse_S))
  s = shifts_S[i]
  if 0 < i < len(shifts_S) - 1:
    a, b, c = sse_S[i - 1], sse_S[i], sse_S[i + 1]
    den = a - 2 * b + c
    if den > 0:
      s += 0.5 * step * (a - c) / den
  return float(s)


def _energy_timing(e_T, fps):
  """Peak, time to peak (s, from the first step above half the peak) and duration above half the peak (s)."""
  if len(e_T) == 0:
    return 0.0, 0.0, 0.0
  i = int(np.argmax(e_T))
  peak = float(e_T[i])
  above = e_T >= 0.5 * peak
  first = int(np.argmax(above))
  return peak, (i - first) / fps, float(above.sum()) / fps


FEATURE_NAMES = (
  "mouth_peak",
  "mouth_time_to_peak",
  "mouth_duration_half",
  "eye_peak",
  "eye_time_to_peak",
  "eye_duration_half",
  "corner_darkening",
  "vertical_shift_px",
  "smile_duration_half",
)
N_REST = 2  # frames averaged for the rest reference (the clip starts neutral: pre-roll >= 0.3 s)


def _smooth3(x_T):
  """3-tap moving average with edge padding (same length)."""
  return np.convolve(np.pad(np.asarray(x_T, float), 1, mode="edge"), np.ones(3) / 3.0, "valid")


def _half_crossings(s_T, fps):
  """Interpolated times (s) of the first rise to and the last fall from 0.5 of a normalised envelope."""
  above = s_T >= 0.5
  if not above.any():
    return 0.0, 0.0
  i, j = int(np.argmax(above)), len(s_T) - 1 - int(np.argmax(above[::-1]))
  t_up = i - (s_T[i] - 0.5) / max(s_T[i] - s_T[i - 1], 1e-9) if i > 0 else 0.0
  t_dn = j + (s_T[j] - 0.5) / max(s_T[j] - s_T[j + 1], 1e-9) if j < len(s_T) - 1 else float(j)
  return t_up / fps, t_dn / fps


def smile_envelope(frames_TxHxWxC, *, n_rest=N_REST):
  """The mouth region's change from rest over time, 0 at rest and ~1 at apex: the projection of (frame - rest) onto
  the apex change pattern (a matched filter, far less noisy than a mean |difference|), 3-tap smoothed and divided by
  the mean of its top three values. Rest = mean of the first ``n_rest`` frames; apex = the frame where the (smoothed)
  mean |difference| of the mouth region from rest is largest, its pattern averaged over it and its neighbours.
  Returns (envelope [T], apex index)."""
  g_TxHxW = _grey(frames_TxHxWxC)
  T = g_TxHxW.shape[0]
  rows, cols = _window(MOUTH_ROWS, MOUTH_COLS, *g_TxHxW.shape[1:])
  m_TxP = g_TxHxW[:, rows, cols].reshape(T, -1)
  ref_P = m_TxP[: max(1, min(n_rest, T))].mean(0)
  apex = int(np.argmax(_smooth3(np.abs(m_TxP - ref_P).mean(1))))
  tmpl_P = m_TxP[max(0, apex - 1) : apex + 2].mean(0) - ref_P
  norm = float(tmpl_P @ tmpl_P)
  if norm <= 0.0:
    return np.zeros(T), apex
  s_T = _smooth3((m_TxP - ref_P) @ tmpl_P / norm)
  top = float(np.sort(s_T)[-3:].mean())
  return (s_T / top if top > 0 else s_T), apex


def pixel_features(frames_TxHxWxC_48, *, fps_sampled=10.0):
  """Hand-made features of one video from its pixels only (spec §6.8; no latents), frames as RealSmileNet sees them
  ([T, 48, 48, 3], fps_sampled frames per second). Fixed regions from the framing spec (§4; the face is framed
  within +-2 px): mouth near 0.75 of the height, eyes near 0.40, outer eye corners ~0.265 of the width either side of
  the centre. Returns float [F] in the order of FEATURE_NAMES:

  - mouth- and eye-region frame-difference energy (mean |difference| of consecutive frames) over time: peak, time to
    peak (s, from the first step at half the peak), duration above half the peak (s);
  - outer-eye-corner darkening at apex: the corner patches' mean grey relative to the face's (cancels the global
    brightness drift), rest minus apex;
  - vertical shift of the face at apex (px, + = down): row-mean profiles of a central column band over the upper
    face vs the rest profile (:func:`vertical_shift`), apex minus rest;
  - smile_duration_half: time (s) the mouth's change from rest (:func:`smile_envelope`) stays above half its apex
    value.

  Apex frames: envelope >= 0.8 (the plateau; the frame where the mouth region differs most from the first frames is
  one of them); rest frames: envelope < 0.2 (else the first frame). Averaging over each set tames the head-translation
  nuisance.
  """
  frames = np.asarray(frames_TxHxWxC_48)
  g_TxHxW = _grey(frames)
  T, H, W = g_TxHxW.shape
  feats = []
  for rows_f, cols_f in ((MOUTH_ROWS, MOUTH_COLS), (EYE_ROWS, EYE_COLS)):
    feats.extend(_energy_timing(region_difference_energy(frames, rows_f, cols_f), fps_sampled))
  s_T, apex = smile_envelope(frames)
  apex_T = s_T >= 0.8
  apex_T[apex] = True
  rest_T = s_T < 0.2
  if not rest_T.any():
    rest_T[0] = True
  rows, cols = _window(FACE_ROWS, FACE_COLS, H, W)
  face_T = g_TxHxW[:, rows, cols].mean((1, 2))
  corner_T = np.zeros(T)
  for side in (-1.0, 1.0):
    c = sorted((0.5 + side * CORNER_HALF_COLS[0], 0.5 + side * CORNER_HALF_COLS[1]))
    r_, c_ = _window(CORNER_ROWS, c, H, W)
    corner_T += 0.5 * g_TxHxW[:, r_, c_].mean((1, 2))
  rel_T = corner_T / np.maximum(face_T, 1.0)
  feats.append(float(rel_T[rest_T].mean() - rel_T[apex_T].mean()))
  rows, cols = _window(SHIFT_ROWS, SHIFT_COLS, H, W)
  prof_TxH = g_TxHxW[:, rows, cols].mean(2)
  ref_H = prof_TxH[rest_T].mean(0)
  shift_T = np.array([vertical_shift(ref_H, p) for p in prof_TxH])
  feats.append(float(shift_T[apex_T].mean() - shift_T[rest_T].mean()))
  t_up, t_dn = _half_crossings(s_T, fps_sampled)
  feats.append(t_dn - t_up)
  return np.array(feats, float)


def corpus_pixel_features(corpus_root, *, size=PROBE_SIZE):
  """:func:`pixel_features` of every video in a corpus folder's videos/ (decoded as RealSmileNet sees them). Returns
  (ids sorted, float [N, F], labels int [N] from the ids)."""
  root = Path(corpus_root)
  ids = sorted(p.stem for p in (root / C.VIDEO_DIR).glob("*.mp4"))
  X = []
  for vid in ids:
    frames, idx, fps = sampled_frames(root / C.VIDEO_DIR / f"{vid}.mp4", size=size)
    X.append(pixel_features(frames, fps_sampled=fps / default_frame_stride(fps)))
  y = np.array([nemo_io.parse_video_id(v)[1] for v in ids], int)
  return ids, np.array(X, float), y


def cross_validated_accuracy(ids, X, y, fold_lists, *, quadratic=False, l2=1e-2):
  """Subject-disjoint CV over given fold lists (fold k -> ids): train a logistic regression on the other folds, test
  on fold k. Returns {"mean": mean of the per-fold accuracies, "per_fold": [K], "overall": pooled accuracy}."""
  pos = {v: i for i, v in enumerate(ids)}
  F = quadratic_features(X) if quadratic else np.asarray(X, float)
  y = np.asarray(y)
  fold_N = np.zeros(len(ids), int)
  for k, fold_ids in fold_lists.items():
    for v in fold_ids:
      if v in pos:
        fold_N[pos[v]] = k
  if (fold_N == 0).any():
    missing = [ids[i] for i in np.flatnonzero(fold_N == 0)[:3]]
    raise ValueError(f"videos in no fold list: {missing}")
  per_fold, correct = [], 0
  for k in sorted(fold_lists):
    test = fold_N == k
    if not test.any():
      continue
    ok = (fit_logistic(F[~test], y[~test], l2=l2)(F[test]) > 0) == (y[test] == 1)
    per_fold.append(float(ok.mean()))
    correct += int(ok.sum())
  return {"mean": float(np.mean(per_fold)), "per_fold": per_fold, "overall": correct / len(ids)}


def pixel_probe_accuracy(corpus_root, *, folds=C.NUM_FOLDS, quadratic=False, l2=1e-2, features=None):
  """Spec §6.8: logistic regression on :func:`pixel_features` only, subject-disjoint `folds`-fold CV over the corpus's
  own folds/ lists (``io.nemo.read_fold_lists``). ``features``: (ids, X, y) from :func:`corpus_pixel_features`, to
  reuse. Returns the dict of :func:`cross_validated_accuracy` (target: mean >= 0.72)."""
  root = Path(corpus_root)
  fold_lists = nemo_io.read_fold_lists(root / C.FOLDS_DIR)
  if len(fold_lists) != folds:
    raise ValueError(f"{root}: {len(fold_lists)} fold lists, expected {folds}")
  ids, X, y = features if features is not None else corpus_pixel_features(root)
  return cross_validated_accuracy(ids, X, y, fold_lists, quadratic=quadratic, l2=l2)


__all__ = [
  "FEATURE_NAMES",
  "VisibleSmile",
  "corpus_pixel_features",
  "corpus_visible_smile",
  "cross_validated_accuracy",
  "fit_logistic",
  "pixel_features",
  "pixel_probe_accuracy",
  "quadratic_features",
  "region_difference_energy",
  "sampled_frames",
  "smile_envelope",
  "vertical_shift",
  "visible_smile",
  "visible_smile_medians",
]
