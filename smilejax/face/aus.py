"""The built-in AU source (``au_source = "mediapipe"``): the paper's 17 AUs and a smile-intensity (SI) proxy from
MediaPipe's blendshapes and landmarks, and the files that carry them into the normal corpus layout.

These are documented proxies, not OpenFace's AUs: each AU is one blendshape (mean of its left and right halves,
0-1) or one landmark distance in units of the outer-eye-corner distance, mapped linearly to OpenFace's 0-5 range
and clipped there. The AUs that OpenFace 2.x models dynamically (person-normalised: AU01, 02, 05, 09, 15, 17, 20,
23, 25, 26, 45) have the clip's low percentile subtracted first, as OpenFace subtracts a person's neutral offset; the
static ones (AU04, 07, 10, 12, 14) are used as they come. AU06 is a landmark measure (cheek rise under the eyes),
because the cheekSquint blendshapes read 0 on real smiles (``../shared/spec/faces.md``). The whole table, with what
each proxy did on real frames, is ``docs/au_proxies.md``.

The outputs use the existing writers, so the readers, AUDA and the models run unchanged: an OpenFace-layout CSV
(timestamps i / fps, success = detected or interpolated), the SI file, the aligned 48x48 crops (``crops/<id>.npy``)
and a sidecar ``openface/<id>.au_source.json`` that names the source, so nothing is ever mistaken for OpenFace
output.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import cv2
import mediapipe
import numpy as np

from smilejax.constants import (
  AU_NAMES,
  AU_SOURCE_SUFFIX,
  CROPS_DIR,
  NUM_AUS,
  OPENFACE_DIR,
  SMILE_INTENSITY_DIR,
  SMILE_INTENSITY_SUFFIX,
)
from smilejax.face.frontend import FaceTrack, track_face
from smilejax.fileio import atomic_write, write_json
from smilejax.io.intensity import write_smile_intensity
from smilejax.io.openface import write_openface_csv
from smilejax.io.video import VideoReader, resize_frames

__all__ = [
  "AU_SOURCE",
  "CROPS_DIR",
  "AuProxy",
  "AU_PROXIES",
  "face_geometry",
  "aus_from_track",
  "crop_faces",
  "sidecar_path",
  "crop_path",
  "write_outputs",
  "is_done",
  "extract_video",
]

AU_SOURCE = "mediapipe"

# MediaPipe face-mesh landmark indices (the subject's right side first).
OUTER_EYE = (33, 263)
INNER_EYE = (133, 362)
CHEEK_UNDER_EYE = (117, 346)  # on the cheek just under the lower lids
CHEEK = (50, 280)  # on the cheek above the nasolabial fold
MOUTH_CORNERS = (61, 291)
INNER_LIPS = (13, 14)  # upper and lower inner lip, mid-line

DYNAMIC_PERCENTILE = 5.0  # the neutral offset of a dynamic AU: this percentile of the clip's values
NEUTRAL_SMILE_MARGIN = 0.05  # AU06 neutral frames: mouthSmile (0-1) within this of the clip's lowest
BLINK_LEVEL = 0.25  # eyeBlink (0-1) above which a frame is a blink for the AU06 measure
FULL_CHEEK_RISE = 0.075  # cheek rise (outer-eye-distance units) that maps to AU06 = 5
FULL_LIP_GAP = 0.25  # inner-lip gap (outer-eye-distance units) that maps to AU25 = 5

# Crop framing (../shared/spec/synthetic.md section 4, as a frontal face detector frames a face): the outer eye
# corners this fraction of the crop width apart, the midpoint of the eye and mouth centres at this height.
EYE_SPAN_OF_WIDTH = 0.52
EYE_MOUTH_MID_Y = 0.56
CROP_WORK_SIZE = 192  # rotate into at most this many pixels, then the bicubic resize of the RealSmileNet path


@dataclasses.dataclass(frozen=True)
class AuProxy:
  """One AU's proxy: ``source`` is blendshape base names (left/right halves averaged) or a landmark measure;
  value = clip(5 * (x - offset) / full, 0, 5), offset = the clip's ``DYNAMIC_PERCENTILE`` if ``dynamic``."""

  au: str
  source: tuple[str, ...]
  dynamic: bool
  full: float = 1.0  # the raw value that maps to 5
  landmark: bool = False


AU_PROXIES: tuple[AuProxy, ...] = (
  AuProxy("AU01", ("browInnerUp",), dynamic=True),
  AuProxy("AU02", ("browOuterUp",), dynamic=True),
  AuProxy("AU04", ("browDown",), dynamic=False),
  AuProxy("AU05", ("eyeWide",), dynamic=True),
  AuProxy("AU06", ("cheek_rise",), dynamic=False, full=FULL_CHEEK_RISE, landmark=True),
  AuProxy("AU07", ("eyeSquint",), dynamic=False),
  AuProxy("AU09", ("noseSneer",), dynamic=True),
  AuProxy("AU10", ("mouthUpperUp",), dynamic=False),
  AuProxy("AU12", ("mouthSmile",), dynamic=False),
  AuProxy("AU14", ("mouthDimple",), dynamic=False),
  AuProxy("AU15", ("mouthFrown",), dynamic=True),
  AuProxy("AU17", ("mouthShrugLower",), dynamic=True),
  AuProxy("AU20", ("mouthStretch",), dynamic=True),
  AuProxy("AU23", ("mouthPress",), dynamic=True),
  AuProxy("AU25", ("lip_gap",), dynamic=True, full=FULL_LIP_GAP, landmark=True),
  AuProxy("AU26", ("jawOpen",), dynamic=True),
  AuProxy("AU45", ("eyeBlink",), dynamic=True),
)
assert tuple(p.au for p in AU_PROXIES) == AU_NAMES


def _blendshape(track: FaceTrack, base: str) -> np.ndarray:
  """float64 [T]: the blendshape ``base`` (0-1), or the mean of ``baseLeft`` and ``baseRight``."""
  names = list(track.blendshape_names)
  cols = [names.index(n) for n in (base, base + "Left", base + "Right") if n in names]
  if not cols or (base in names and len(cols) > 1):
    raise ValueError(f"blendshape {base!r} not among the track's names")
  return np.asarray(track.blendshapes_TxK, dtype=np.float64)[:, cols].mean(axis=1)


def face_geometry(track: FaceTrack) -> np.ndarray:
  """float64 [T, 478, 2]: the landmarks in pixels, roll removed, origin at the outer-eye-corner midpoint, in units
  of the outer-eye-corner distance (x along the eye line, y down)."""
  h, w = track.size_hw
  p = np.asarray(track.landmarks_TxNx3, dtype=np.float64)[:, :, :2] * np.array([w, h], dtype=np.float64)
  eye = p[:, OUTER_EYE[1]] - p[:, OUTER_EYE[0]]
  span = np.maximum(np.linalg.norm(eye, axis=1), 1e-9)
  c, s = eye[:, 0] / span, eye[:, 1] / span
  d = p - (p[:, OUTER_EYE[0]] + p[:, OUTER_EYE[1]])[:, None] / 2
  x = c[:, None] * d[..., 0] + s[:, None] * d[..., 1]
  y = -s[:, None] * d[..., 0] + c[:, None] * d[..., 1]
  return np.stack([x, y], axis=-1) / span[:, None, None]


def _cheek_rise(q: np.ndarray, smile_T: np.ndarray, blink_T: np.ndarray) -> np.ndarray:
  """AU06 raw: how far the cheek points under both eyes rose above their neutral height (outer-eye-distance
  units). Neutral = the median over the frames whose mouthSmile is within NEUTRAL_SMILE_MARGIN of the clip's lowest.
  Blinks (eyeBlink above BLINK_LEVEL) drag the mesh's cheek points up with the lid, so those frames are bridged by
  linear interpolation from the frames around them."""
  pairs = [(i, e) for pts in (CHEEK_UNDER_EYE, CHEEK) for i, e in zip(pts, OUTER_EYE)]
  height_T = np.mean([q[:, i, 1] - q[:, e, 1] for i, e in pairs], axis=0)
  open_T = blink_T <= BLINK_LEVEL
  if open_T.any() and not open_T.all():
    t = np.arange(height_T.shape[0])
    height_T = np.interp(t, t[open_T], height_T[open_T])
  neutral = smile_T <= smile_T.min() + NEUTRAL_SMILE_MARGIN
  return np.median(height_T[neutral]) - height_T


def aus_from_track(track: FaceTrack) -> tuple[np.ndarray, np.ndarray]:
  """(au_TxA float64 [T, 17] in AU_NAMES order, 0-5; si_T float64 [T], the mean mouthSmile, 0-1) of a track
  (every frame detected or interpolated: finite landmarks and blendshapes). The table: ``AU_PROXIES``."""
  smile_T = _blendshape(track, "mouthSmile")
  q = face_geometry(track)
  raw = {
    "cheek_rise": _cheek_rise(q, smile_T, _blendshape(track, "eyeBlink")),
    "lip_gap": q[:, INNER_LIPS[1], 1] - q[:, INNER_LIPS[0], 1],
  }
  au_TxA = np.empty((smile_T.shape[0], NUM_AUS), dtype=np.float64)
  for a, proxy in enumerate(AU_PROXIES):
    x = raw[proxy.source[0]] if proxy.landmark else _blendshape(track, proxy.source[0])
    if proxy.dynamic:
      x = x - np.percentile(x, DYNAMIC_PERCENTILE)
    au_TxA[:, a] = np.clip(5.0 * x / proxy.full, 0.0, 5.0)
  if not (np.all(np.isfinite(au_TxA)) and np.all(np.isfinite(smile_T))):
    raise ValueError(f"{track.video}: the face track has non-finite landmarks or blendshapes")
  return au_TxA, np.clip(smile_T, 0.0, 1.0)


def _crop_matrix(q_src: np.ndarray, work: int) -> np.ndarray:
  """2x3 affine map from frame pixels to a ``work`` x ``work`` crop: roll removed, framed as the module says."""
  left, right = q_src[OUTER_EYE[0]], q_src[OUTER_EYE[1]]
  eye_mid = (left + right) / 2
  mouth_mid = (q_src[MOUTH_CORNERS[0]] + q_src[MOUTH_CORNERS[1]]) / 2
  span = max(float(np.linalg.norm(right - left)), 1e-6)
  c, s = (right - left) / span
  scale = EYE_SPAN_OF_WIDTH * work / span
  rot = scale * np.array([[c, s], [-s, c]])
  centre = (eye_mid + mouth_mid) / 2
  shift = np.array([0.5 * work, EYE_MOUTH_MID_Y * work]) - rot @ centre
  return np.concatenate([rot, shift[:, None]], axis=1)


def crop_faces(track: FaceTrack, frames: Iterable[np.ndarray], *, size: int = 48) -> np.ndarray:
  """uint8 [T, size, size, 3]: each frame (RGB uint8 [H, W, 3], the track's frames in order) cropped around the
  tracked face with the roll removed and the outer eye corners EYE_SPAN_OF_WIDTH of the width apart; rotated into a
  CROP_WORK_SIZE square (bilinear), then resized bicubic as the RealSmileNet path resizes."""
  h, w = track.size_hw
  pts = np.asarray(track.landmarks_TxNx3, dtype=np.float64)[:, :, :2] * np.array([w, h], dtype=np.float64)
  n = pts.shape[0]
  out = np.empty((n, size, size, 3), dtype=np.uint8)
  work = max(CROP_WORK_SIZE, size)
  t = 0
  for t, frame in enumerate(frames):
    if t >= n:
      raise ValueError(f"{track.video}: more frames than the face track's {n}")
    if frame.shape[:2] != (h, w):
      raise ValueError(f"{track.video}: frame {t} is {frame.shape[:2]}, the track's frames are {(h, w)}")
    big = cv2.warpAffine(
      np.ascontiguousarray(frame),
      _crop_matrix(pts[t], work),
      (work, work),
      flags=cv2.INTER_LINEAR,
      borderMode=cv2.BORDER_REPLICATE,
    )
    out[t] = resize_frames(big[None], size)[0]
    t += 1
  if t != n:
    raise ValueError(f"{track.video}: {t} frames for a face track of {n}")
  return out


def sidecar_path(out_dir: str | os.PathLike, video_id: str) -> Path:
  return Path(out_dir) / OPENFACE_DIR / f"{video_id}{AU_SOURCE_SUFFIX}"


def crop_path(out_dir: str | os.PathLike, video_id: str) -> Path:
  return Path(out_dir) / CROPS_DIR / f"{video_id}.npy"


def _smilejax_version() -> str:
  try:
    return metadata.version("smilejax")
  except metadata.PackageNotFoundError:
    return "unknown"


def write_outputs(
  out_dir: str | os.PathLike,
  video_id: str,
  track: FaceTrack,
  au_TxA: np.ndarray,
  si_T: np.ndarray,
  crops: np.ndarray | None,
  *,
  model_sha256: str,
) -> Path:
  """Write ``openface/<id>.csv`` (timestamps i / fps; success = detected or interpolated), the SI file,
  ``crops/<id>.npy`` (when given) and, last, the sidecar (its presence marks the video finished). Each file is
  written under a temporary name and moved into place. Returns the sidecar's path."""
  out_dir = Path(out_dir)
  n = au_TxA.shape[0]
  csv = out_dir / OPENFACE_DIR / f"{video_id}.csv"
  tmp = csv.with_name(f".{csv.name}.tmp{os.getpid()}")
  success_T = np.asarray(track.detected_T, dtype=bool) | np.asarray(track.interpolated_T, dtype=bool)
  write_openface_csv(tmp, au_TxA, timestamps_T=np.arange(n) / track.fps, success_T=success_T)
  os.replace(tmp, csv)
  si = out_dir / SMILE_INTENSITY_DIR / f"{video_id}{SMILE_INTENSITY_SUFFIX}"
  tmp = si.with_name(f".{si.name}.tmp{os.getpid()}")
  write_smile_intensity(tmp, si_T)
  os.replace(tmp, si)
  if crops is not None:
    atomic_write(crop_path(out_dir, video_id), lambda f: np.save(f, crops), binary=True)
  sidecar = sidecar_path(out_dir, video_id)
  write_json(
    sidecar,
    {
      "au_source": AU_SOURCE,
      "video": str(track.video),
      "fps": float(track.fps),
      "n_frames": int(n),
      "n_detected": int(np.sum(track.detected_T)),
      "n_interpolated": int(np.sum(track.interpolated_T)),
      "n_faces_max": int(track.n_faces_max),
      "mediapipe_version": mediapipe.__version__,
      "model_sha256": model_sha256,
      "smilejax_version": _smilejax_version(),
      "note": "MediaPipe blendshape/landmark proxies of the AUs (docs/au_proxies.md), not OpenFace output",
    },
  )
  return sidecar


def is_done(out_dir: str | os.PathLike, video_id: str) -> bool:
  """True when the video's outputs are all there (the sidecar is written last)."""
  out_dir = Path(out_dir)
  return (
    sidecar_path(out_dir, video_id).is_file()
    and (out_dir / OPENFACE_DIR / f"{video_id}.csv").is_file()
    and (out_dir / SMILE_INTENSITY_DIR / f"{video_id}{SMILE_INTENSITY_SUFFIX}").is_file()
    and crop_path(out_dir, video_id).is_file()
  )


def extract_video(
  video: str | os.PathLike,
  out_dir: str | os.PathLike,
  video_id: str,
  *,
  model_path: str | os.PathLike,
  model_sha256: str,
  max_gap_seconds: float = 0.2,
) -> int:
  """Track the face of ``video``, derive the AUs, SI and crops, and write them under ``out_dir`` as ``video_id``
  (:func:`write_outputs`). The crops decode the video a second time, so memory stays one frame. Returns the number
  of frames; a video without a usable face raises InputError (:func:`smilejax.face.frontend.track_face`)."""
  track = track_face(video, model_path=model_path, max_gap_seconds=max_gap_seconds)
  au_TxA, si_T = aus_from_track(track)
  crops = crop_faces(track, VideoReader(video))
  write_outputs(out_dir, video_id, track, au_TxA, si_T, crops, model_sha256=model_sha256)
  return int(au_TxA.shape[0])
