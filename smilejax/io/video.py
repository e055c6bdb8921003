"""Video files: decode to RGB uint8 frames, encode H.264, and resize frames (bicubic) for the networks.

Decoding runs the ffmpeg binary shipped with ``imageio-ffmpeg`` (no PyAV) and reads a PPM stream from its stdout,
one frame at a time, so a long 1080p video never has to be held whole when the caller only keeps a few frames
(:class:`VideoReader`). Each frame's presentation time comes from ffmpeg's ``showinfo`` filter, so variable frame
rates are kept; ``-fps_mode passthrough`` makes ffmpeg emit every decoded frame exactly once (no duplicates or drops).

Bad input (missing file, not a video, truncated file, no video stream, zero frames) raises InputError naming the file
and ffmpeg's first error line. A file whose end is cut off but whose header is at the front ("faststart") decodes
partly: it is refused when ffmpeg reports "partial file" or when far fewer frames (< 90 %) come out than the header's
duration x fps announces (only a warning when the file has an audio stream, which may be the longer one).

Resizing (:func:`resize_frames`) follows realsmilenet.md section 2: bicubic as Pillow does it (Keys kernel a = -0.5,
the kernel widened by the scale factor when shrinking, i.e. antialiased), implemented as two small matrix products
in NumPy (separable filter), so readers stay free of JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np
from absl import logging

from smilejax.errors import InputError

__all__ = [
  "VideoFrames",
  "VideoReader",
  "read_video",
  "write_video",
  "resize_frames",
  "bicubic_weights",
  "check_video_matches",
]


@dataclasses.dataclass(frozen=True)
class VideoFrames:
  """Decoded video. frames_TxHxWxC uint8 RGB; fps = the stream's average rate; timestamps_T float64 seconds
  (presentation times, first frame at 0)."""

  path: Path
  frames_TxHxWxC: np.ndarray
  fps: float
  timestamps_T: np.ndarray

  @property
  def n_frames(self) -> int:
    return int(self.frames_TxHxWxC.shape[0])


@functools.lru_cache(maxsize=1)
def _ffmpeg() -> str:
  return imageio_ffmpeg.get_ffmpeg_exe()


_FPS_RE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d+(?:\.\d+)?)(k?) fps")
_TBR_RE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d+(?:\.\d+)?)(k?) tbr")
_PTS_RE = re.compile(r"\] \[info\] n: *(\d+) .*?pts_time:(-?[0-9.eE+-]+)")
_LEVEL_RE = re.compile(r"\[(error|fatal|panic)\] (.*)")
# Messages of the output side (the PPM pipe muxer), not of decoding: a clip whose presentation times are not
# monotonic (HEVC from phones with B-frames and edit lists) makes the muxer complain about every such frame though
# each frame decodes. The frame count is checked separately (header duration x fps, module docstring).
_OUTPUT_SIDE_RE = re.compile(r"^\[image2pipe @|non monotonically increasing dts to muxer")


def _header_fps(log: str) -> float | None:
  """The video stream's average frame rate from ffmpeg's input header ("25 fps", else "25 tbr")."""
  for regex in (_FPS_RE, _TBR_RE):
    m = regex.search(log)
    if m:
      return float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
  return None


_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def _header_duration(log: str) -> float | None:
  """The input's duration in seconds from ffmpeg's header ("Duration: 00:00:02.42"), None if "N/A"."""
  m = _DURATION_RE.search(log)
  return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def _first_error(log: str) -> str:
  """ffmpeg's first error line about the input (the output muxer's complaints are not decoding errors)."""
  for line in log.splitlines():
    m = _LEVEL_RE.search(line)
    if m and not _OUTPUT_SIDE_RE.search(line):
      return m.group(2).strip()
  return ""


class VideoReader:
  """Iterate over the RGB frames of a video (uint8 HxWx3), one at a time.

  ``fps`` is set once the first frame has been yielded; after iteration ``n_frames`` and ``timestamps_T`` are set
  too (and a decoding problem raises InputError). Usage::

      reader = VideoReader(path)
      for i, frame_HxWxC in enumerate(reader): ...
      reader.fps, reader.timestamps_T
  """

  def __init__(self, path: str | os.PathLike):
    self.path = Path(path)
    self.n_frames = 0
    self.fps: float | None = None
    self.timestamps_T: np.ndarray | None = None
    if not self.path.is_file():
      raise InputError(f"{self.path}: video file not found")
    if self.path.stat().st_size == 0:
      raise InputError(f"{self.path}: empty video file (0 bytes)")

  def __iter__(self) -> Iterator[np.ndarray]:
    cmd = [
      _ffmpeg(),
      "-nostdin",
      "-hide_banner",
      "-loglevel",
      "level+info",
      "-i",
      str(self.path),
      "-map",
      "0:v:0",
      "-vf",
      "showinfo",
      "-fps_mode",
      "passthrough",
      "-f",
      "image2pipe",
      "-c:v",
      "ppm",
      "-pix_fmt",
      "rgb24",
      "-",
    ]
    # stderr goes to a file, not a pipe: ffmpeg writes one showinfo line per frame and a full pipe would block it.
    with tempfile.TemporaryFile(mode="w+b") as log_file:
      proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL)
      n = 0
      try:
        stream = proc.stdout
        while True:
          frame = _read_ppm(stream, self.path)
          if frame is None:
            break
          if n == 0:
            # ffmpeg prints the input's header before any output, so the stream's frame rate is known
            # from the first frame on (callers that sample every k-th frame need it early). pread does
            # not move the file offset that ffmpeg shares.
            self.fps = _header_fps(os.pread(log_file.fileno(), 1 << 16, 0).decode("utf-8", "replace"))
          n += 1
          yield frame
      finally:
        # At the end of the stream this is harmless; if the caller stopped early (or a frame was bad), ffmpeg
        # then ends on a broken pipe instead of blocking on a full one.
        proc.stdout.close()
        rc = proc.wait()
        log_file.seek(0)
        log = log_file.read().decode("utf-8", "replace")
      self._finish(rc, n, log)

  def _finish(self, rc: int, n: int, log: str) -> None:
    path = self.path
    if "Stream #" not in log or ": Video: " not in log:
      err = _first_error(log) or "no video stream"
      raise InputError(f"{path}: cannot decode video ({err})")
    if "partial file" in log:
      raise InputError(f"{path}: truncated video (ffmpeg: partial file; {n} frames decoded)")
    if rc != 0:
      raise InputError(
        f"{path}: cannot decode video (ffmpeg exit {rc}: {_first_error(log) or 'unknown error'}; {n} frames decoded)"
      )
    if n == 0:
      raise InputError(f"{path}: video has no frames")
    err = _first_error(log)
    if err:
      logging.warning("%s: ffmpeg reported a decoding error (%s); %d frames decoded", path, err, n)
    # A file cut at a packet boundary decodes without any error: compare with the header's duration. When an
    # audio stream exists the container duration may be the audio's, so a shortfall is only a warning then.
    duration = _header_duration(log)
    fps_header = _header_fps(log)
    if duration is not None and fps_header:
      expected = duration * fps_header
      if n < 0.9 * expected - 2:
        what = (
          f"{n} frames decoded but the header announces {duration:.2f} s at {fps_header:g} fps (~{expected:.0f} frames)"
        )
        if ": Audio: " in log:
          logging.warning("%s: %s; the audio may be longer than the video", path, what)
        else:
          raise InputError(f"{path}: truncated video ({what})")
    pts = {}
    for m in _PTS_RE.finditer(log):
      pts[int(m.group(1))] = float(m.group(2))
    fps = _header_fps(log)
    if len(pts) == n:
      t = np.array([pts[i] for i in range(n)], dtype=np.float64)
      t = t - t[0]
      if fps is None and n > 1:
        fps = (n - 1) / max(t[-1], 1e-9)
    else:
      t = None
    if fps is None or not np.isfinite(fps) or fps <= 0:
      raise InputError(f"{path}: cannot determine the video frame rate")
    self.n_frames = n
    self.fps = float(fps)
    self.timestamps_T = t if t is not None else np.arange(n, dtype=np.float64) / fps


def _read_token(stream, path) -> bytes:
  """Next whitespace-separated token of a PPM header (skipping '#' comments)."""
  tok = bytearray()
  while True:
    c = stream.read(1)
    if not c:
      if tok:
        return bytes(tok)
      return b""
    if c == b"#" and not tok:
      while c not in (b"\n", b""):
        c = stream.read(1)
      continue
    if c.isspace():
      if tok:
        return bytes(tok)
      continue
    tok += c


def _read_ppm(stream, path) -> np.ndarray | None:
  """One binary PPM (P6, maxval 255) frame from the pipe, or None at the end of the stream."""
  magic = _read_token(stream, path)
  if not magic:
    return None
  if magic != b"P6":
    raise InputError(f"{path}: unexpected decoder output (not PPM)")
  w, h, maxval = (int(_read_token(stream, path)) for _ in range(3))
  if maxval != 255:
    raise InputError(f"{path}: unexpected decoder output (PPM maxval {maxval})")
  size = w * h * 3
  buf = stream.read(size)
  if len(buf) != size:
    raise InputError(f"{path}: decoder output ended inside a frame")
  return np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)


def read_video(path: str | os.PathLike) -> VideoFrames:
  """Decode every frame of ``path`` (all in memory: use :class:`VideoReader` to keep only some)."""
  reader = VideoReader(path)
  frames = list(reader)
  return VideoFrames(path=Path(path), frames_TxHxWxC=np.stack(frames), fps=reader.fps, timestamps_T=reader.timestamps_T)


def check_video_matches(
  video_path: str | os.PathLike,
  n_video: int,
  video_fps: float,
  csv_path: str | os.PathLike,
  n_csv: int,
  csv_fps: float,
  *,
  max_frames: int = 2,
  max_duration: float = 0.02,
) -> None:
  """Refuse a video and its per-frame series (an OpenFace CSV) that cannot be the same recording: frame counts that
  differ by more than ``max_frames``, or durations (frames / fps) by more than the fraction ``max_duration`` of the
  longer one. One InputError line names both files and the config keys of the tolerances."""
  d_video, d_csv = n_video / video_fps, n_csv / csv_fps
  if abs(n_video - n_csv) > max_frames or abs(d_video - d_csv) > max_duration * max(d_video, d_csv):
    raise InputError(
      f"{video_path} ({n_video} frames at {video_fps:g} fps, {d_video:.2f} s) does not match {csv_path} ({n_csv} "
      f"frames at {csv_fps:g} fps, {d_csv:.2f} s); allowed: {max_frames} frames and {100 * max_duration:g} % of the "
      "duration (config data.max_frame_mismatch, data.max_duration_mismatch)"
    )


def write_video(
  path: str | os.PathLike,
  frames_TxHxWxC: np.ndarray,
  *,
  fps: float,
  crf: int = 10,
  pix_fmt: str = "yuv420p",
  preset: str = "veryfast",
  threads: int = 1,
) -> Path:
  """Encode RGB uint8 frames as H.264 (libx264, constant quality ``crf``; 0 = lossless luma) in an mp4.

  ``pix_fmt="yuv420p"`` (default) plays everywhere but needs even width and height; ``"yuv444p"`` keeps full
  colour resolution (any size; decodable by ffmpeg, not by every player). ``+faststart`` puts the index at the front.
  ``preset``/``threads``: x264 speed settings; "veryfast" on one thread costs about a third of "medium" per clip,
  which matters when a corpus is encoded by one worker per core.
  """
  path = Path(path)
  frames = np.asarray(frames_TxHxWxC)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
    raise ValueError(f"frames must be uint8 [T>0, H, W, 3], got {frames.dtype} {frames.shape}")
  t, h, w, _ = frames.shape
  if pix_fmt == "yuv420p" and (h % 2 or w % 2):
    raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}; use pix_fmt='yuv444p'")
  path.parent.mkdir(parents=True, exist_ok=True)
  cmd = [
    _ffmpeg(),
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "-s",
    f"{w}x{h}",
    "-r",
    f"{fps}",
    "-i",
    "-",
    "-an",
    "-c:v",
    "libx264",
    "-preset",
    preset,
    "-threads",
    str(int(threads)),
    "-crf",
    str(int(crf)),
    "-pix_fmt",
    pix_fmt,
    "-movflags",
    "+faststart",
    str(path),
  ]
  proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
  if proc.returncode != 0:
    raise OSError(f"{path}: ffmpeg failed to encode ({proc.stderr.decode('utf-8', 'replace').strip()[:300]})")
  return path


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
  x = np.abs(x)
  return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


@functools.lru_cache(maxsize=64)
def bicubic_weights(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] resampling matrix of Pillow's bicubic filter (support 2, widened by n_in/n_out when shrinking).

  Output pixel i has centre c = (i + 0.5) * s with s = n_in / n_out; input pixel j gets weight
  k((j + 0.5 - c) / max(s, 1)), k the Keys cubic (a = -0.5); rows are normalised to sum to 1.
  """
  s = n_in / n_out
  support = max(s, 1.0)
  centres = (np.arange(n_out) + 0.5) * s
  j = np.arange(n_in) + 0.5
  w = _keys_cubic((j[None, :] - centres[:, None]) / support)
  w /= w.sum(axis=1, keepdims=True)
  return w


def resize_frames(frames_TxHxWxC: np.ndarray, size: tuple[int, int] | int = 48) -> np.ndarray:
  """Bicubic resize of uint8 frames [..., H, W, C] to [..., h, w, C] uint8, as Pillow's ``resize(BICUBIC)``.

  Two separable passes like Pillow: columns first, y = x @ Ww^T, rounded and clipped to 0..255 (Pillow keeps the
  intermediate image in uint8), then rows, out = Wh @ y, rounded and clipped; W from :func:`bicubic_weights`.
  Matches Pillow up to its fixed-point arithmetic (a grey level or two at most). ``size``: int or (h, w).
  """
  h, w = (size, size) if isinstance(size, int) else size
  x = np.asarray(frames_TxHxWxC)
  if x.ndim < 3:
    raise ValueError(f"frames must be [..., H, W, C], got {x.shape}")
  *lead, big_h, big_w, c = x.shape
  wh = bicubic_weights(big_h, h).astype(np.float32)
  ww = bicubic_weights(big_w, w).astype(np.float32)
  # Each pass is one large 2-D matrix product (fast BLAS path): [N*H*C, W] @ [W, w], then [N*C*w, H] @ [H, h].
  xt = x.reshape(-1, big_h, big_w, c).transpose(0, 1, 3, 2).astype(np.float32)  # [N, H, C, W]
  y = np.clip(np.rint(xt.reshape(-1, big_w) @ ww.T), 0, 255)  # [N*H*C, w]
  y = y.reshape(-1, big_h, c * w).transpose(0, 2, 1)  # [N, C*w, H]
  z = np.clip(np.rint(y.reshape(-1, big_h) @ wh.T), 0, 255)  # [N*C*w, h]
  z = z.reshape(-1, c, w, h).transpose(0, 3, 2, 1)  # [N, h, w, C]
  return z.reshape(*lead, h, w, c).astype(np.uint8)
