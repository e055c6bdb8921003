"""Score one video and see why: per-method probabilities and per-AU attributions.

``explain_video`` computes the video's AUDA features (``auda.extract``, auda.md §7-§10), loads a trained fold's
models (``train.load_trained``) and returns each method's P(spontaneous) and, for the three AUDA models, per-AU
attributions: gradient x input of the logit with respect to the standardised input z = (x - mu_train) / sigma_train,
a_i = z_i * dlogit/dz_i (for a linear model exactly w_i z_i, the feature's contribution relative to the average
training video; positive pushes towards "spontaneous"). Features are summed per AU with the layout of
``auda.layout.feature_to_au_matrix``: AU-wise features belong to one AU, a cross-AU feature is split half to each AU
of its pair, frame-wise columns are summed over the sampled frames and the SI column is its own row "SI". The sums
rank AUs by local first-order influence; they do not add up to the logit. RealSmileNet and the fusions get
probabilities only (their inputs are pixels or other models' features).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from smilejax import auda, constants, train
from smilejax import workdir as workdir_lib
from smilejax.auda.layout import (
  DEFAULT_SEGMENTS,
  FRAME_DIM,
  SI_FRAME_INDEX,
  au_wise_feature_names,
  cross_au_feature_names,
  feature_to_au_matrix,
  frame_feature_names,
)
from smilejax.data import match_options, openface_options
from smilejax.errors import InputError
from smilejax.io.intensity import read_smile_intensity
from smilejax.io.nemo import parse_video_id
from smilejax.io.openface import read_openface_csv
from smilejax.io.video import check_video_matches, read_video, resize_frames
from smilejax.methods import AUDA_METHODS, FUSION_MEMBERS, METHODS
from smilejax.prepare import corpus_root
from smilejax.sequences import default_frame_stride, sample_frame_indices

A = constants.NUM_AUS  # 17

# ---------------------------------------------------------------------------------------------------------------------
# Model application and gradient × input
# ---------------------------------------------------------------------------------------------------------------------


def _standardizer_arrays(standardizer: Any) -> tuple[np.ndarray, np.ndarray] | None:
  """(mean, std) from a TrainedModel.standardizer: None, a (mean, std) pair, an object with .mean/.std, or a
  mapping with 'mean'/'std'."""
  if standardizer is None:
    return None
  if isinstance(standardizer, Mapping):
    mean, std = standardizer["mean"], standardizer["std"]
  elif hasattr(standardizer, "mean") and hasattr(standardizer, "std") and not isinstance(standardizer, np.ndarray):
    mean, std = standardizer.mean, standardizer.std
  else:
    mean, std = standardizer
  mean = np.asarray(mean, dtype=np.float64)
  std = np.asarray(std, dtype=np.float64)
  std = np.where(std > 0, std, 1.0)  # std 0 -> 1 (realsmilenet.md §7)
  return mean, std


def standardize(x: np.ndarray, standardizer: Any) -> np.ndarray:
  """z = (x − mean) / std over the last axis (identity when the model has no standardizer)."""
  ms = _standardizer_arrays(standardizer)
  x = np.asarray(x, dtype=np.float64)
  if ms is None:
    return x
  mean, std = ms
  return (x - mean.reshape(-1)) / std.reshape(-1)


@functools.lru_cache(maxsize=None)
def _compiled(module: Any) -> tuple[Callable, Callable]:
  """Jitted (forward, forward + gradient) for one Flax module: one compilation per module and input shape instead
  of one per primitive (eager dispatch compiles every op separately, which dominates a one-video explanation)."""

  def forward(variables, z, lengths):
    return module.apply(variables, z, lengths, train=False)

  def forward_and_grad(variables, z, lengths):
    def total_logit(zz):
      logit, feats = forward(variables, zz, lengths)
      return jnp.sum(logit), (logit, feats)

    grad, (logit, feats) = jax.grad(total_logit, has_aux=True)(z)
    return logit, feats, z * grad

  return jax.jit(forward), jax.jit(forward_and_grad)


def _module_key(model: Any) -> Any:
  try:
    hash(model.module)
    return model.module
  except TypeError:  # an unhashable module: compile without the cache
    return None


def _fns(model: Any) -> tuple[Callable, Callable]:
  key = _module_key(model)
  return _compiled(key) if key is not None else _compiled.__wrapped__(model.module)


def apply_model(model: Any, z: np.ndarray, lengths_B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(logit_B, feats_BxF) of `model.module` in evaluation mode on already standardised input z."""
  forward, _ = _fns(model)
  logit, feats = forward(model.variables, jnp.asarray(z, jnp.float32), jnp.asarray(lengths_B, jnp.int32))
  return np.asarray(logit, dtype=np.float64), np.asarray(feats, dtype=np.float64)


def gradient_x_input(model: Any, z: np.ndarray, lengths_B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(logit_B, feats_BxF, a) with a = z ⊙ ∂(Σ_b logit_b)/∂z (eval mode). Rows of a batch are independent in eval
  mode, so a row's attribution equals that of the video run alone."""
  _, forward_and_grad = _fns(model)
  logit, feats, a = forward_and_grad(model.variables, jnp.asarray(z, jnp.float32), jnp.asarray(lengths_B, jnp.int32))
  return (np.asarray(logit, dtype=np.float64), np.asarray(feats, dtype=np.float64), np.asarray(a, dtype=np.float64))


def per_au_attribution(method: str, attr: np.ndarray) -> dict[str, float]:
  """Sum one video's feature attributions into AUs (plus "SI" for the frame-wise model).

  attr: framewise [T, 154] (real sampled frames only), auwise [k·119], crossau [k·1088]."""
  attr = np.asarray(attr, dtype=np.float64)
  if method == "framewise":
    per_feature = attr.reshape(-1, FRAME_DIM).sum(axis=0)
    per_au = per_feature @ feature_to_au_matrix("frame")
    out = {constants.AU_NAMES[a]: float(per_au[a]) for a in range(A)}
    out["SI"] = float(per_feature[SI_FRAME_INDEX])
    return out
  if method == "auwise":
    per_au = attr.reshape(-1) @ feature_to_au_matrix("au_wise", attr.size)
  elif method == "crossau":
    per_au = attr.reshape(-1) @ feature_to_au_matrix("cross_au", attr.size)
  else:
    raise ValueError(f"per-AU attribution is defined for {AUDA_METHODS}, got {method!r}")
  return {constants.AU_NAMES[a]: float(per_au[a]) for a in range(A)}


def _config_get(config: Any, key: str) -> Any:
  if config is None:
    return None
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if isinstance(config, Mapping):
    if key in config:
      return config[key]
    for v in config.values():
      if isinstance(v, Mapping) or hasattr(v, "to_dict"):
        found = _config_get(v, key)
        if found is not None:
          return found
  return None


# ---------------------------------------------------------------------------------------------------------------------
# Explanation of one video
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Explanation:
  """Result of :func:`explain_features` / :func:`explain_video`.

  probabilities / logits: method -> value, for every method whose model (and inputs) were available.
  attributions: DataFrame with columns AU, method, attribution (AU order of constants.AU_NAMES; the frame-wise
    model adds a row "SI").
  feature_attributions: method -> gradient × input per feature (framewise [T', 154] over the sampled frames,
    auwise [476], crossau [4352]).
  """

  video_id: str
  probabilities: dict[str, float]
  logits: dict[str, float]
  attributions: pd.DataFrame
  feature_attributions: dict[str, np.ndarray]
  fps: float
  au_TxA: np.ndarray | None
  si_T: np.ndarray | None
  phases_T: np.ndarray | None
  no_smile_detected: bool
  sampled_frames: np.ndarray | None = None
  notes: list[str] = dataclasses.field(default_factory=list)
  segments: tuple[str, ...] = DEFAULT_SEGMENTS  # AUDA segments of the AU-wise / cross-AU vectors (auda.md §10)

  def top_features(self, method: str, k: int = 10) -> pd.DataFrame:
    """The k features with the largest |attribution| of an AUDA method, with their names."""
    segments = self.segments
    a = self.feature_attributions[method]
    if method == "framewise":
      a = a.reshape(-1, FRAME_DIM).sum(axis=0)
      names = frame_feature_names()
    elif method == "auwise":
      names = au_wise_feature_names(segments)
    else:
      names = cross_au_feature_names(segments)
    if len(names) != a.size:
      raise ValueError(f"{method}: {a.size} features but the layout has {len(names)} (segments={segments})")
    order = np.argsort(-np.abs(a), kind="stable")[:k]
    return pd.DataFrame({"index": order, "feature": [names[i] for i in order], "attribution": a[order]})


def _sigmoid(x: float) -> float:
  return float(1.0 / (1.0 + math.exp(-x))) if x >= 0 else float(math.exp(x) / (1.0 + math.exp(x)))


def explain_features(
  models: Mapping[str, Any],
  features: Any,
  *,
  fps: float,
  frame_stride: int | None = None,
  frames_TxHxWxC: np.ndarray | None = None,
  au_TxA: np.ndarray | None = None,
  si_T: np.ndarray | None = None,
  video_id: str = "",
  segments: Sequence[str] | None = None,
) -> Explanation:
  """Probabilities and attributions for one video from already computed AUDA features.

  models: method key -> TrainedModel-like (.module, .variables, .standardizer, optional .config); absent methods
    are skipped. features: AudaFeatures-like (.frame_TxD [T, 154] at the full frame rate, .au_wise_D,
    .cross_au_D, .phases_T, .no_smile_detected). frames_TxHxWxC: RealSmileNet input, already sampled, 48×48,
    float in [0, 1] (needed for realsmilenet and fusion_all). frame_stride: sampling of the frame-wise features,
    the same as the video's (default round(fps / 10); explain_video takes the run's data.frame_stride).
    segments: the AUDA segments the AU-wise / cross-AU vectors were computed with (default DEFAULT_SEGMENTS).
  """
  probs: dict[str, float] = {}
  logits: dict[str, float] = {}
  feats: dict[str, np.ndarray] = {}
  feat_attr: dict[str, np.ndarray] = {}
  rows: list[dict[str, Any]] = []
  notes: list[str] = []
  sampled = None

  for method in AUDA_METHODS:
    model = models.get(method)
    if model is None:
      continue
    if method == "framewise":
      frame_TxD = np.asarray(features.frame_TxD, dtype=np.float64)
      stride = frame_stride or default_frame_stride(fps)
      sampled = sample_frame_indices(frame_TxD.shape[0], int(stride))
      x = frame_TxD[sampled][None]  # [1, T', 154]
      lengths = np.array([x.shape[1]])
    else:
      vec = features.au_wise_D if method == "auwise" else features.cross_au_D
      x = np.asarray(vec, dtype=np.float64)[None]  # [1, D]
      lengths = np.ones(1, dtype=np.int64)
    z = standardize(x, model.standardizer)
    logit, f, a = gradient_x_input(model, z, lengths)
    logits[method] = float(logit[0])
    probs[method] = _sigmoid(logits[method])
    feats[method] = f[0]
    feat_attr[method] = a[0]
    for au, v in per_au_attribution(method, a[0]).items():
      rows.append({"AU": au, "method": method, "attribution": v})

  rsn = models.get("realsmilenet")
  if rsn is not None:
    if frames_TxHxWxC is None:
      notes.append("realsmilenet: no video frames given, not scored")
    else:
      x = np.asarray(frames_TxHxWxC, dtype=np.float64)[None]
      logit, f = apply_model(rsn, standardize(x, getattr(rsn, "standardizer", None)), np.array([x.shape[1]]))
      logits["realsmilenet"] = float(logit[0])
      probs["realsmilenet"] = _sigmoid(logits["realsmilenet"])
      feats["realsmilenet"] = f[0]

  for fusion, default_members in FUSION_MEMBERS.items():
    model = models.get(fusion)
    if model is None:
      continue
    members = _config_get(getattr(model, "config", None), "members") or default_members
    absent = [m for m in members if m not in feats]
    if absent:
      notes.append(f"{fusion}: member(s) {', '.join(absent)} not scored, fusion not scored")
      continue
    x = np.concatenate([feats[m] for m in members])[None]
    logit, _ = apply_model(model, standardize(x, model.standardizer), np.ones(1, dtype=np.int64))
    logits[fusion] = float(logit[0])
    probs[fusion] = _sigmoid(logits[fusion])

  attributions = pd.DataFrame(rows, columns=["AU", "method", "attribution"])
  return Explanation(
    video_id=video_id,
    probabilities=probs,
    logits=logits,
    attributions=attributions,
    feature_attributions=feat_attr,
    fps=float(fps),
    au_TxA=None if au_TxA is None else np.asarray(au_TxA),
    si_T=None if si_T is None else np.asarray(si_T),
    phases_T=None if getattr(features, "phases_T", None) is None else np.asarray(features.phases_T),
    no_smile_detected=bool(getattr(features, "no_smile_detected", False)),
    sampled_frames=sampled,
    notes=notes,
    segments=tuple(segments) if segments else DEFAULT_SEGMENTS,
  )


def run_config(fold_dir: str | os.PathLike) -> dict[str, Any]:
  """The run's config.json (<workdir>/config.json, the fold directory's parent); {} when absent."""
  path = Path(fold_dir).parent / workdir_lib.CONFIG
  return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def run_frame_stride(cfg: Mapping[str, Any]) -> int | None:
  """A run config's data.frame_stride; None where it is 0 or absent (round(fps / 10), realsmilenet.md §2)."""
  return int((cfg.get("data") or {}).get("frame_stride", 0) or 0) or None


def run_frame_size(cfg: Mapping[str, Any]) -> int:
  """A run config's data.frame_size (RealSmileNet's input size; 48 where absent)."""
  return int((cfg.get("data") or {}).get("frame_size", 48) or 48)


def _segments(auda_options: Any) -> tuple[str, ...] | None:
  """The AUDA segments of a config section (mapping) or an AudaOptions-like object; None where unset."""
  if isinstance(auda_options, Mapping):
    segments = auda_options.get("segments")
  else:
    segments = getattr(auda_options, "segments", None)
  return tuple(segments) if segments else None


def load_models(
  fold_dir: str | os.PathLike, methods: Sequence[str] | None = None, *, load_model: Callable[[Path], Any] | None = None
) -> dict[str, Any]:
  """method -> trained model for every method directory of `fold_dir` that exists (default loader:
  smilejax.train.load_trained)."""
  fold_dir = Path(fold_dir)
  load_model = load_model or train.load_trained
  wanted = methods or METHODS
  return {m: load_model(fold_dir / m) for m in wanted if (fold_dir / m).is_dir()}


def load_video_frames(
  video: str | os.PathLike,
  *,
  frame_stride: int | None = None,
  frame_size: int = 48,
  openface: Any = None,
  data_cfg: Any = None,
) -> tuple[np.ndarray, float]:
  """RealSmileNet input for one mp4: every stride-th frame (realsmilenet.md §2), bicubic 48×48, float32 in [0, 1].
  With ``openface`` (its OpenFaceSeries) the mp4 must match it as in the corpus (``data_cfg``'s tolerances).
  Returns (frames_TxHxWxC, fps)."""
  v = read_video(video)
  if openface is not None:
    check_video_matches(
      video, v.n_frames, v.fps, openface.path, openface.n_frames, openface.fps, **match_options(data_cfg)
    )
  idx = sample_frame_indices(v.n_frames, frame_stride or default_frame_stride(v.fps))
  frames = resize_frames(v.frames_TxHxWxC[idx], frame_size).astype(np.float32) / 255.0
  return frames, v.fps


def fold_test_video(fold_dir: str | os.PathLike, video_id: str | None = None) -> dict[str, Any]:
  """Inputs of one TEST video of a finished fold, located through the run's config.json: the corpus folder
  (config data.root, or the synthetic corpus the run generated) and the corpus layout (constants: openface/,
  smile_intensities/, videos/). video_id defaults to the first id of the fold's predictions.csv.

  Returns {"id", "label", "openface_csv", "si_file", "video" (None when the mp4 is absent), "predictions"
  (that video's row of predictions.csv as a dict: the probabilities the experiment recorded)}."""
  fold_dir = Path(fold_dir)
  pred_path = fold_dir / workdir_lib.PREDICTIONS
  if not pred_path.is_file():
    raise InputError(f"{pred_path}: no predictions (is the fold finished?)")
  preds = pd.read_csv(pred_path, dtype={"id": str, "subject": str})
  if video_id is None:
    video_id = str(preds["id"].iloc[0])
  row = preds[preds["id"] == video_id]
  if row.empty:
    raise InputError(f"{pred_path}: {video_id} is not a test video of this fold")
  cfg = run_config(fold_dir)
  if not cfg:
    raise InputError(f"{fold_dir.parent / 'config.json'}: run config not found")
  root, _ = corpus_root(ml_collections.ConfigDict(cfg))
  mp4 = root / constants.VIDEO_DIR / f"{video_id}.mp4"
  return {
    "id": video_id,
    "label": int(row["label"].iloc[0]),
    "openface_csv": root / constants.OPENFACE_DIR / f"{video_id}.csv",
    "si_file": root / constants.SMILE_INTENSITY_DIR / f"{video_id}{constants.SMILE_INTENSITY_SUFFIX}",
    "video": mp4 if mp4.is_file() else None,
    "predictions": row.iloc[0].to_dict(),
  }


def explain_video(
  fold_dir: str | os.PathLike,
  *,
  openface_csv: str | os.PathLike,
  si_file: str | os.PathLike,
  video: str | os.PathLike | None = None,
  methods: Sequence[str] | None = None,
  auda_options: Any = None,
  frame_stride: int | None = None,
  load_model: Callable[[Path], Any] | None = None,
  models: Mapping[str, Any] | None = None,
  frames_TxHxWxC: np.ndarray | None = None,
) -> Explanation:
  """Score one video with a trained fold and attribute the AUDA models' decisions to AUs (module docstring).

  fold_dir: <workdir>/fold_XX with one sub-directory per trained method. openface_csv / si_file: the video's
  OpenFace 2.x CSV and smile-intensity file (same number of frames). video: the mp4 (optional; without it
  RealSmileNet and the fusion of all features are not scored). auda_options / frame_stride: default to the run's
  config.json ("auda" section, data.frame_stride), so the features match those the models were trained on.
  models: already loaded models (skips loading; load_model: the loader, default smilejax.train.load_trained).
  frames_TxHxWxC: RealSmileNet's input already sampled (e.g. a bin/extract_aus corpus's crops); ``video`` is then
  not decoded.
  """
  fold_dir = Path(fold_dir)
  cfg = run_config(fold_dir)
  if auda_options is None:
    auda_options = cfg.get("auda") or None
  data_cfg = cfg.get("data") or {}
  if frame_stride is None:
    frame_stride = run_frame_stride(cfg)
  series = read_openface_csv(openface_csv, **openface_options(data_cfg))
  si_T = read_smile_intensity(si_file)
  if si_T.shape[0] != series.n_frames:
    raise InputError(
      f"{si_file}: {si_T.shape[0]} smile-intensity values but {openface_csv} has {series.n_frames} frames"
    )
  video_id = Path(openface_csv).stem
  features = auda.extract(series.au_TxA, si_T, fps=series.fps, options=auda_options, name=video_id)
  if models is None:
    models = load_models(fold_dir, methods, load_model=load_model)
  elif methods is not None:
    models = {m: v for m, v in models.items() if m in methods}
  frames = frames_TxHxWxC
  if frames is None and video is not None and "realsmilenet" in models:
    # The mp4 must match the CSV as in the corpus (data_cfg).
    frames, _ = load_video_frames(
      video, frame_stride=frame_stride, frame_size=run_frame_size(cfg), openface=series, data_cfg=data_cfg
    )
  expl = explain_features(
    models,
    features,
    fps=series.fps,
    frame_stride=frame_stride,
    frames_TxHxWxC=frames,
    au_TxA=series.au_TxA,
    si_T=si_T,
    video_id=video_id,
    segments=_segments(auda_options),
  )
  if series.n_interpolated:
    expl.notes.append(f"{series.n_interpolated} failed OpenFace frames were interpolated")
  return expl


# ---------------------------------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------------------------------
_METHOD_COLORS = {"framewise": "#1f77b4", "auwise": "#ff7f0e", "crossau": "#2ca02c"}
_PHASE_COLORS = {
  constants.PHASE_ONSET: ("#fde0c5", "onset"),
  constants.PHASE_APEX: ("#f9b4b4", "apex"),
  constants.PHASE_OFFSET: ("#c6dbef", "offset"),
}


def top_aus(expl: Explanation, k: int = 8, *, normalize: bool = True) -> list[str]:
  """The k AUs (SI excluded) with the largest Σ_methods |attribution| (per-method shares with `normalize`)."""
  return top_aus_of(normalized_attributions(expl) if normalize else expl.attributions, k)


def normalized_attributions(expl: Explanation) -> pd.DataFrame:
  """attributions with each method's values divided by that method's Σ|attribution| (SI included): a signed share,
  so methods with very different logit scales can share one axis."""
  df = expl.attributions.copy()
  total = df.assign(mag=df["attribution"].abs()).groupby("method")["mag"].transform("sum")
  df["attribution"] = np.where(total > 0, df["attribution"] / total.where(total > 0, 1.0), 0.0)
  return df


def top_aus_of(df: pd.DataFrame, k: int) -> list[str]:
  df = df[df["AU"] != "SI"]
  if df.empty:
    return []
  score = df.assign(mag=df["attribution"].abs()).groupby("AU", sort=False)["mag"].sum()
  return list(score.sort_values(ascending=False, kind="stable").index[:k])


def _true_label(video_id: str) -> str | None:
  try:
    return constants.LABEL_NAMES[parse_video_id(video_id)[1]]
  except Exception:  # pylint: disable=broad-except  # an id outside the corpus naming scheme: no label shown
    return None


def plot_explanation(expl: Explanation, *, top_k: int = 8, curves_k: int = 4, normalize: bool = True):
  """Left: grouped horizontal bars of the top_k AUs' attributions per AUDA method (positive = towards
  spontaneous); with `normalize`, each method's values are divided by its Σ|attribution| (signed shares), so a
  method with a large logit scale does not hide the others. Right: the curves_k most influential AUs over time
  with SI (right axis) and the detected phases shaded. Returns the matplotlib Figure."""
  fig, (ax_bar, ax_t) = plt.subplots(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [1, 1.5]})
  df = normalized_attributions(expl) if normalize else expl.attributions
  aus = top_aus_of(df, top_k)
  shown = [m for m in AUDA_METHODS if m in set(df["method"])]
  h = 0.8 / max(1, len(shown))
  for mi, m in enumerate(shown):
    sub = df[df["method"] == m].set_index("AU")["attribution"]
    vals = [float(sub.get(au, 0.0)) for au in aus]
    ys = np.arange(len(aus)) + (mi - (len(shown) - 1) / 2) * h
    ax_bar.barh(ys, vals, height=h, color=_METHOD_COLORS.get(m), label=f"{m} (p = {expl.probabilities[m]:.2f})")
  ax_bar.axvline(0, color="k", lw=0.8)
  ax_bar.set_yticks(np.arange(len(aus)))
  ax_bar.set_yticklabels(aus)
  ax_bar.invert_yaxis()
  ax_bar.set_xlabel(
    ("share of the method's Σ|gradient × input|" if normalize else "gradient × input on the logit")
    + "  (← posed | spontaneous →)"
  )
  ax_bar.set_title(f"Top {len(aus)} AUs by |attribution|" + (" (normalised per method)" if normalize else ""))
  ax_bar.grid(axis="x", color="0.9")
  ax_bar.legend(fontsize=8, loc="best")

  if expl.au_TxA is not None:
    t = np.arange(expl.au_TxA.shape[0]) / expl.fps
    if expl.phases_T is not None:
      ph = np.asarray(expl.phases_T)
      for label, (color, _) in _PHASE_COLORS.items():
        on = ph == label
        edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
        for s, e in zip(edges[::2], edges[1::2]):
          ax_t.axvspan(t[s], t[e - 1] + 1.0 / expl.fps, color=color, alpha=0.7, lw=0, zorder=0)
    for au in aus[:curves_k]:
      a = constants.AU_NAMES.index(au)
      ax_t.plot(t, expl.au_TxA[:, a], lw=1.4, label=au)
    ax_t.set_xlabel("time [s]")
    ax_t.set_ylabel("AU intensity (OpenFace)")
    handles, labels = ax_t.get_legend_handles_labels()
    if expl.si_T is not None:
      ax_si = ax_t.twinx()
      ax_si.plot(t, expl.si_T, color="k", ls="--", lw=1.0)
      ax_si.set_ylabel("smile intensity (SI)")
      handles.append(Line2D([], [], color="k", ls="--"))
      labels.append("SI")
    handles += [Patch(color=c, alpha=0.7) for c, _ in _PHASE_COLORS.values()]
    labels += [n for _, n in _PHASE_COLORS.values()]
    ax_t.legend(handles, labels, fontsize=8, loc="upper right", ncol=2)
    ax_t.set_title(
      "AU curves of the top AUs, detected phases shaded" + ("  (no smile detected)" if expl.no_smile_detected else "")
    )
  else:
    ax_t.axis("off")
  probs = ", ".join(f"{m} {p:.2f}" for m, p in expl.probabilities.items())
  truth = _true_label(expl.video_id)
  fig.suptitle(f"{expl.video_id}" + (f" (true: {truth})" if truth else "") + f" — P(spontaneous): {probs}", fontsize=11)
  fig.tight_layout(rect=(0, 0, 1, 0.94))
  return fig
