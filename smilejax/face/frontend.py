"""Face front end: decode a video and follow one face through it with MediaPipe's Face Landmarker.

Decoding goes through :class:`smilejax.io.video.VideoReader` (the ffmpeg of imageio-ffmpeg: any frame rate,
H.264/HEVC, rotation metadata applied by ffmpeg's autorotation, RGB frames one at a time). Each frame goes to the
Face Landmarker (Tasks API, VIDEO running mode, so it tracks between frames instead of detecting afresh; blendshapes
on), which returns up to ``max_faces`` faces of 478 landmarks and 52 blendshapes.

Which face: the largest one (area of the landmarks' bounding box) in the first frame with a face; after that, the
face whose box overlaps most (IoU) with the tracked face's last box, provided the IoU is at least ``min_iou`` (a face
elsewhere in the picture is someone else, not the tracked face). When several faces were seen, one log line says so.

Faces that come and go: a run of frames without the tracked face that lasts at most ``max_gap_seconds`` is filled by
linear interpolation between the detections on either side (landmarks and blendshapes; ``interpolated_T`` marks
those frames); misses at the start or the end are held from the nearest detection under the same limit. A longer
run is refused with an InputError naming the file and the frame range; a clip without any face raises
"no face found in <file>".
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import mediapipe as mp
import numpy as np
from absl import logging
from mediapipe.tasks.python import BaseOptions, vision

from smilejax.errors import InputError
from smilejax.face import model
from smilejax.io.video import VideoReader

__all__ = ["FaceTrack", "track_face", "N_LANDMARKS", "N_BLENDSHAPES"]

N_LANDMARKS = 478
N_BLENDSHAPES = 52


@dataclasses.dataclass
class FaceTrack:
  """One face followed through a video. Landmark x, y are normalised to [0, 1] of the frame's width and height
  (z: MediaPipe's relative depth, same scale as x); blendshapes are MediaPipe's scores in [0, 1]."""

  video: Path
  fps: float
  size_hw: tuple[int, int]
  detected_T: np.ndarray
  interpolated_T: np.ndarray
  landmarks_TxNx3: np.ndarray
  blendshapes_TxK: np.ndarray
  blendshape_names: tuple[str, ...]
  n_faces_max: int

  @property
  def n_frames(self) -> int:
    return int(self.detected_T.shape[0])


def _landmarker(model_path: Path, max_faces: int) -> vision.FaceLandmarker:
  options = vision.FaceLandmarkerOptions(
    base_options=BaseOptions(model_asset_path=str(model_path), delegate=BaseOptions.Delegate.CPU),
    running_mode=vision.RunningMode.VIDEO,
    num_faces=max_faces,
    output_face_blendshapes=True,
  )
  return vision.FaceLandmarker.create_from_options(options)


def _box(landmarks_Nx3: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
  """[x0, y0, x1, y1] in pixels of the landmarks' bounding box."""
  h, w = size_hw
  xy = landmarks_Nx3[:, :2] * np.array([w, h], dtype=np.float32)
  return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def _area(box: np.ndarray) -> float:
  return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  inter = _area(np.concatenate([np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])]))
  union = _area(a) + _area(b) - inter
  return inter / union if union > 0 else 0.0


def _runs(mask_T: np.ndarray) -> list[tuple[int, int]]:
  """(first, last) frame of each run of True in ``mask_T``."""
  padded = np.concatenate([[False], mask_T, [False]]).astype(np.int8)
  edges = np.flatnonzero(np.diff(padded))
  return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _fill_gaps(path: Path, fps: float, detected_T: np.ndarray, arrays: list[np.ndarray], max_gap_seconds: float):
  """Fill the frames without the face in each of ``arrays`` (first axis = frames), in place; the filled mask.
  InputError when a run of misses lasts longer than ``max_gap_seconds``."""
  n = detected_T.shape[0]
  missing = _runs(~detected_T)
  too_long = [(a, b) for a, b in missing if (b - a + 1) / fps > max_gap_seconds + 1e-9]
  if too_long:
    a, b = max(too_long, key=lambda r: r[1] - r[0])
    more = f"; {len(too_long) - 1} more such gaps" if len(too_long) > 1 else ""
    raise InputError(
      f"{path}: face lost in frames {a}-{b} ({a / fps:.2f}-{(b + 1) / fps:.2f} s, {(b - a + 1) / fps:.2f} s; at most "
      f"{max_gap_seconds:g} s is interpolated){more}"
    )
  filled_T = ~detected_T
  for a, b in missing:
    for x in arrays:
      if a == 0:
        x[a : b + 1] = x[b + 1]
      elif b == n - 1:
        x[a : b + 1] = x[a - 1]
      else:
        w = (np.arange(a, b + 1, dtype=np.float32) - (a - 1)) / (b + 2 - a)
        w = w.reshape((-1,) + (1,) * (x.ndim - 1))
        x[a : b + 1] = (1 - w) * x[a - 1] + w * x[b + 1]
  return filled_T


def track_face(
  video: str | os.PathLike,
  *,
  model_path: str | os.PathLike | None = None,
  max_gap_seconds: float = 0.2,
  max_faces: int = 4,
  min_iou: float = 0.1,
  on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> FaceTrack:
  """Follow one face through ``video`` (module docstring). ``model_path``: the landmarker model (default:
  :func:`smilejax.face.model.find_model`). ``on_frame(i, frame_HxWx3)`` is called with every decoded RGB frame,
  so a caller that needs the pixels too (face crops) does not decode the video a second time."""
  path = Path(video)
  model_file = model.find_model(model_path)
  reader = VideoReader(path)
  landmarks, blendshapes, found = [], [], []
  names: tuple[str, ...] = ()
  size_hw = (0, 0)
  last_box = None
  n_faces_max = 0
  t_prev = -1
  with _landmarker(model_file, max_faces) as landmarker:
    for i, frame in enumerate(reader):
      if on_frame is not None:
        on_frame(i, frame)
      size_hw = (int(frame.shape[0]), int(frame.shape[1]))
      # VIDEO mode needs strictly increasing timestamps in ms; the nominal rate gives them before the stream ends.
      t_ms = max(int(round(i * 1000.0 / reader.fps)), t_prev + 1)
      t_prev = t_ms
      result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame), t_ms)
      faces = [np.array([(p.x, p.y, p.z) for p in f], dtype=np.float32) for f in result.face_landmarks]
      n_faces_max = max(n_faces_max, len(faces))
      pick = None
      if faces:
        boxes = [_box(f, size_hw) for f in faces]
        if last_box is None:
          pick = int(np.argmax([_area(b) for b in boxes]))
        else:
          ious = [_iou(b, last_box) for b in boxes]
          pick = int(np.argmax(ious)) if max(ious) >= min_iou else None
      if pick is None:
        found.append(False)
        landmarks.append(np.zeros((N_LANDMARKS, 3), np.float32))
        blendshapes.append(np.zeros(N_BLENDSHAPES, np.float32))
        continue
      last_box = boxes[pick]
      cats = result.face_blendshapes[pick]
      if not names:
        names = tuple(c.category_name for c in cats)
      found.append(True)
      landmarks.append(faces[pick])
      blendshapes.append(np.array([c.score for c in cats], dtype=np.float32))
  detected_T = np.array(found, dtype=bool)
  if not detected_T.any():
    raise InputError(f"no face found in {path} ({detected_T.shape[0]} frames)")
  if n_faces_max > 1:
    logging.info("%s: up to %d faces in a frame; following the one that was largest at the start", path, n_faces_max)
  landmarks_TxNx3 = np.stack(landmarks)
  blendshapes_TxK = np.stack(blendshapes)
  interpolated_T = _fill_gaps(path, reader.fps, detected_T, [landmarks_TxNx3, blendshapes_TxK], max_gap_seconds)
  return FaceTrack(
    video=path,
    fps=float(reader.fps),
    size_hw=size_hw,
    detected_T=detected_T,
    interpolated_T=interpolated_T,
    landmarks_TxNx3=landmarks_TxNx3,
    blendshapes_TxK=blendshapes_TxK,
    blendshape_names=names,
    n_faces_max=n_faces_max,
  )
