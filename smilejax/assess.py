"""Assess one video with a trained fold: P(spontaneous) per method, the fusion's decision, the detected phases in
seconds and the AUs that drove each AUDA model (``bin/assess``).

Without an OpenFace CSV the video goes through the face front end (``smilejax.face.frontend.track_face``) and the
built-in AU source (``smilejax.face.aus``: MediaPipe proxies of the AUs and SI, aligned 48x48 crops for
RealSmileNet at the run's frame indices); with a CSV and an SI file those are read as ``explain.explain_video``
reads them. The per-AU numbers are ``explain``'s gradient x input of each AUDA model's logit, summed per AU: a local
first-order influence (positive pushes towards "spontaneous"), not a decomposition of the probability.

Warnings say when the models were trained on another AU source than the one used here (the workdir's
config.json ``data.au_source``, absent = "openface") and when they were trained on the synthetic corpus.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from smilejax import auda, constants, explain
from smilejax import workdir as workdir_lib
from smilejax.constants import AU_SOURCE_SUFFIX
from smilejax.data import crop_frames, openface_options
from smilejax.errors import InputError
from smilejax.face import aus as face_aus
from smilejax.face.frontend import track_face
from smilejax.io import nemo
from smilejax.io.video import VideoReader
from smilejax.methods import AUDA_METHODS, METHODS
from smilejax.sequences import default_frame_stride, sample_frame_indices

AU_SOURCE_OPENFACE = "openface"
DECISION_THRESHOLD = 0.5  # spontaneous iff p > 0.5 (logit > 0), the training code's rule
FUSION_ORDER = ("fusion_all", "fusion_auda")  # the decision: the first fusion that was scored
PHASE_NAMES = {constants.PHASE_ONSET: "onset", constants.PHASE_APEX: "apex", constants.PHASE_OFFSET: "offset"}
TOP_AUS = 3  # AUs listed per AUDA method


@dataclasses.dataclass
class Assessment:
  """What ``bin/assess`` prints: see :func:`assess_video`."""

  video: Path
  fold_dir: Path
  au_source: str
  trained_au_source: str
  dataset: str
  explanation: explain.Explanation
  decision: dict[str, Any] | None
  phases: dict[str, dict[str, float]]
  drivers: dict[str, list[dict[str, Any]]]
  warnings: list[str]

  def to_dict(self) -> dict[str, Any]:
    e = self.explanation
    return {
      "video": str(self.video),
      "fold_dir": str(self.fold_dir),
      "au_source": self.au_source,
      "trained_au_source": self.trained_au_source,
      "dataset": self.dataset,
      "fps": e.fps,
      "n_frames": None if e.au_TxA is None else int(e.au_TxA.shape[0]),
      "p_spontaneous": {m: e.probabilities[m] for m in METHODS if m in e.probabilities},
      "decision": self.decision,
      "no_smile_detected": e.no_smile_detected,
      "phases": self.phases,
      "au_attribution": "gradient x input of each AUDA model's logit, summed per AU (+ towards spontaneous)",
      "top_aus": self.drivers,
      "warnings": self.warnings,
      "notes": list(e.notes),
    }


def resolve_fold(workdir: str | os.PathLike, fold: int | None = None) -> Path:
  """The fold directory to score with: ``fold``, or the lowest finished fold. A missing workdir or an unfinished
  fold is an InputError (one line)."""
  workdir = Path(workdir)
  if not workdir.is_dir():
    raise InputError(f"{workdir}: no such workdir")
  if fold is not None:
    if not workdir_lib.is_finished(workdir, fold):
      raise InputError(f"{workdir_lib.fold_dir(workdir, fold)}: fold {fold} is not finished (no fold_result.json)")
    return workdir_lib.fold_dir(workdir, fold)
  finished = [k for k in workdir_lib.folds_present(workdir) if workdir_lib.is_finished(workdir, k)]
  if not finished:
    raise InputError(f"{workdir}: no finished fold (no fold_XX/fold_result.json)")
  return workdir_lib.fold_dir(workdir, finished[0])


def _csv_au_source(openface_csv: Path) -> str:
  """The AU source of a CSV: the bin/extract_aus sidecar's, else OpenFace."""
  sidecar = openface_csv.with_name(f"{openface_csv.stem}{AU_SOURCE_SUFFIX}")
  return nemo.read_au_source(sidecar) if sidecar.is_file() else AU_SOURCE_OPENFACE


def _extracted_crops(openface_csv: Path, cfg: dict[str, Any]) -> np.ndarray | None:
  """RealSmileNet's input from a bin/extract_aus corpus (<root>/crops/<id>.npy next to <root>/openface/<id>.csv,
  sampled as smilejax.data samples them), or None when there are no crops."""
  path = face_aus.crop_path(openface_csv.parent.parent, openface_csv.stem)
  if not path.is_file():
    return None
  sidecar = json.loads(openface_csv.with_name(f"{openface_csv.stem}{AU_SOURCE_SUFFIX}").read_text(encoding="utf-8"))
  frames, _, _ = crop_frames(
    nemo.read_crops(path, int(sidecar["n_frames"])),
    fps=float(sidecar["fps"]),
    frame_stride=explain.run_frame_stride(cfg),
    frame_size=explain.run_frame_size(cfg),
  )
  return frames.astype(np.float32) / 255.0


def explain_with_face_frontend(
  video: str | os.PathLike, fold_dir: Path, models: dict[str, Any], *, model_path: str | os.PathLike | None = None
) -> explain.Explanation:
  """Explanation of ``video`` from the face front end and the built-in AU source (crops for RealSmileNet)."""
  cfg = explain.run_config(fold_dir)
  data_cfg = cfg.get("data") or {}
  track = track_face(video, model_path=model_path, max_gap_seconds=openface_options(data_cfg)["max_gap_seconds"])
  au_TxA, si_T = face_aus.aus_from_track(track)
  stride = explain.run_frame_stride(cfg) or default_frame_stride(track.fps)
  frames = None
  if "realsmilenet" in models:
    # The frames RealSmileNet sees (sequences.py), decoded a second time so memory stays one frame.
    idx = sample_frame_indices(track.n_frames, stride)
    wanted = set(int(i) for i in idx)
    sub = dataclasses.replace(track, landmarks_TxNx3=track.landmarks_TxNx3[idx], detected_T=track.detected_T[idx])
    picked = (frame for i, frame in enumerate(VideoReader(video)) if i in wanted)
    frames = face_aus.crop_faces(sub, picked, size=explain.run_frame_size(cfg)).astype(np.float32) / 255.0
  video_id = Path(video).stem
  features = auda.extract(au_TxA, si_T, fps=track.fps, options=cfg.get("auda") or None, name=video_id)
  expl = explain.explain_features(
    models,
    features,
    fps=track.fps,
    frame_stride=stride,
    frames_TxHxWxC=frames,
    au_TxA=au_TxA,
    si_T=si_T,
    video_id=video_id,
    segments=(cfg.get("auda") or {}).get("segments"),
  )
  n_interp = int(np.sum(track.interpolated_T))
  if n_interp:
    expl.notes.append(f"{n_interp} frame(s) without the face were interpolated")
  if track.n_faces_max > 1:
    expl.notes.append(f"up to {track.n_faces_max} faces in a frame; the one largest at the start was followed")
  return expl


def phase_times(expl: explain.Explanation) -> dict[str, dict[str, float]]:
  """phase name -> {start_s, end_s, start_frame, end_frame} (end exclusive) of each detected phase."""
  out: dict[str, dict[str, float]] = {}
  if expl.phases_T is None:
    return out
  ph = np.asarray(expl.phases_T)
  for label, name in PHASE_NAMES.items():
    on = np.flatnonzero(ph == label)
    if on.size:
      s, e = int(on[0]), int(on[-1]) + 1
      out[name] = {"start_s": s / expl.fps, "end_s": e / expl.fps, "start_frame": s, "end_frame": e}
  return out


def top_drivers(expl: explain.Explanation, k: int = TOP_AUS) -> dict[str, list[dict[str, Any]]]:
  """AUDA method -> its k AUs (SI included for the frame-wise model) with the largest |gradient x input|."""
  out: dict[str, list[dict[str, Any]]] = {}
  df = expl.attributions
  for m in AUDA_METHODS:
    sub = df[df["method"] == m]
    if sub.empty:
      continue
    order = np.argsort(-np.abs(sub["attribution"].to_numpy()), kind="stable")[:k]
    out[m] = [{"AU": str(sub["AU"].iloc[i]), "gradient_x_input": float(sub["attribution"].iloc[i])} for i in order]
  return out


def decision_of(expl: explain.Explanation) -> dict[str, Any] | None:
  for fusion in FUSION_ORDER:
    if fusion in expl.probabilities:
      p = expl.probabilities[fusion]
      label = constants.LABEL_SPONTANEOUS if p > DECISION_THRESHOLD else constants.LABEL_POSED
      return {"method": fusion, "p_spontaneous": p, "label": constants.LABEL_NAMES[label]}
  return None


def assess_video(
  video: str | os.PathLike,
  workdir: str | os.PathLike,
  *,
  fold: int | None = None,
  openface_csv: str | os.PathLike | None = None,
  si_file: str | os.PathLike | None = None,
  model_path: str | os.PathLike | None = None,
) -> Assessment:
  """Score ``video`` with a finished fold of ``workdir`` (module docstring). ``openface_csv`` and ``si_file`` go
  together; without them the face front end and the built-in AU source are used."""
  video = Path(video)
  if (openface_csv is None) != (si_file is None):
    raise InputError("--openface_csv and --si_file go together (give both or neither)")
  if not video.is_file():
    raise InputError(f"{video}: no such video")
  fold_dir = resolve_fold(workdir, fold)
  cfg = explain.run_config(fold_dir)
  trained = str((cfg.get("data") or {}).get("au_source") or AU_SOURCE_OPENFACE)
  result = json.loads((fold_dir / workdir_lib.FOLD_RESULT).read_text(encoding="utf-8"))
  dataset = str(result.get("dataset", ""))
  models = explain.load_models(fold_dir)
  if not models:
    raise InputError(f"{fold_dir}: no trained models")
  if openface_csv is None:
    used = face_aus.AU_SOURCE
    expl = explain_with_face_frontend(video, fold_dir, models, model_path=model_path)
  else:
    used = _csv_au_source(Path(openface_csv))
    frames = (
      _extracted_crops(Path(openface_csv), cfg) if used == face_aus.AU_SOURCE and "realsmilenet" in models else None
    )
    expl = explain.explain_video(
      fold_dir, openface_csv=openface_csv, si_file=si_file, video=video, models=models, frames_TxHxWxC=frames
    )
  warnings = []
  if used != trained:
    warnings.append(
      f"warning: the models were trained on {trained} AUs, these are {used} AUs: the features differ from training"
    )
  if dataset == "synthetic":
    warnings.append(
      "warning: the models were trained on the synthetic corpus: the scores are a demonstration, not a judgement"
    )
  return Assessment(
    video=video,
    fold_dir=fold_dir,
    au_source=used,
    trained_au_source=trained,
    dataset=dataset,
    explanation=expl,
    decision=decision_of(expl),
    phases=phase_times(expl),
    drivers=top_drivers(expl),
    warnings=warnings,
  )


def format_text(a: Assessment) -> str:
  """The short table ``bin/assess`` prints."""
  e = a.explanation
  n = None if e.au_TxA is None else e.au_TxA.shape[0]
  lines = [
    f"{a.video}: {n} frames at {e.fps:.3f} fps, AUs from {a.au_source}; models: {a.fold_dir} "
    f"(trained on {a.dataset or 'unknown'} data, {a.trained_au_source} AUs)",
    "",
    f"{'method':<14}{'P(spontaneous)':>15}",
  ]
  for m in METHODS:
    if m in e.probabilities:
      lines.append(f"{m:<14}{e.probabilities[m]:>15.3f}")
  if a.decision:
    d = a.decision
    lines.append(f"decision ({d['method']}): {d['label']} (p = {d['p_spontaneous']:.3f})")
  lines.append("")
  if e.no_smile_detected or not a.phases:
    lines.append("phases: no smile detected")
  else:
    lines.append(
      "phases: " + ", ".join(f"{name} {p['start_s']:.2f}-{p['end_s']:.2f} s" for name, p in a.phases.items())
    )
  lines.append("AUs that drove each AUDA model (gradient x input, summed per AU; + towards spontaneous):")
  for m, rows in a.drivers.items():
    lines.append(f"  {m:<10} " + ", ".join(f"{r['AU']} {r['gradient_x_input']:+.3f}" for r in rows))
  lines += [f"note: {n}" for n in e.notes]
  return "\n".join(lines)


def plot(a: Assessment):
  """explain.plot_explanation's figure, labelled with the AU source and the fusion's decision."""
  fig = explain.plot_explanation(a.explanation)
  if len(fig.axes) > 1 and a.explanation.au_TxA is not None:
    fig.axes[1].set_ylabel(
      "AU intensity (OpenFace)" if a.au_source == AU_SOURCE_OPENFACE else f"AU intensity ({a.au_source} proxy, 0-5)"
    )
  title = fig._suptitle.get_text() if fig._suptitle is not None else a.video.name  # noqa: SLF001
  if a.decision:
    title += f"\ndecision ({a.decision['method']}): {a.decision['label']}"
  if a.dataset == "synthetic":
    title += " — models trained on the synthetic corpus: a demonstration, not a judgement"
  fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.92))
  return fig
