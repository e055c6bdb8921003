"""Face front end speed benchmark (issue 17). Run by hand; not a test.

    .venv/bin/python benchmarks/bench_face.py [--repeats 5] [--cores 0]

Each case runs in its own subprocess pinned to one core (``taskset -c 0``; ffmpeg's decoder and MediaPipe's threads
inherit the pinning, as MediaPipe 1.2.3's Tasks API has no thread-count option):

* ``decode``: :class:`smilejax.io.video.VideoReader` over every frame (ffmpeg decode + RGB pipe), nothing else;
* ``frontend``: :func:`smilejax.face.frontend.track_face` (decode + Face Landmarker in VIDEO mode with blendshapes +
  tracking + gap rule), everything a caller pays, the landmarker's creation included (``create_ms`` on its own);

on ``../shared/data/real/single_face.mp4`` (640x360, 30 fps, 72 frames) and on the same clip upscaled to 1920x1080 at
50 fps (H.264, written once to a temporary folder), the UvA-NEMO format. Median (and min) of ``--repeats`` runs after
one warm-up run: ms per frame and the real-time factor (seconds of video per second of processing). The UvA-NEMO
estimate: 1240 videos of ~250 frames (200-300) at the 1080p rate, on one core and on two worker processes.

The subprocess entry point is ``--case NAME --video PATH`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smilejax.face import frontend, model
from smilejax.io import video

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "real" / "single_face.mp4"
NEMO_VIDEOS, NEMO_FRAMES = 1240, 250


def _decode(path: Path) -> int:
  n = 0
  for _ in video.VideoReader(path):
    n += 1
  return n


def run_case(case: str, path: Path, repeats: int) -> dict:
  """Time one case in this process: warm-up, then ``repeats`` runs."""
  model_file = model.find_model()
  out = {"case": case, "video": str(path)}
  if case == "frontend":
    t0 = time.perf_counter()
    frontend._landmarker(model_file, 4).close()
    out["create_ms"] = 1000 * (time.perf_counter() - t0)
  times = []
  for i in range(repeats + 1):
    t0 = time.perf_counter()
    if case == "decode":
      n = _decode(path)
    else:
      track = frontend.track_face(path, model_path=model_file)
      n = track.n_frames
      out["detected"] = int(track.detected_T.sum())
    if i:
      times.append(time.perf_counter() - t0)
  out["frames"] = n
  out["seconds"] = times
  return out


def upscaled_clip(folder: Path) -> Path:
  """single_face.mp4 resized to 1920x1080 and written at 50 fps (x264 crf 18)."""
  clip = video.read_video(CLIP)
  frames = np.stack([video.resize_frames(f, (1080, 1920)) for f in clip.frames_TxHxWxC])
  return video.write_video(folder / "single_face_1080p50.mp4", frames, fps=50.0, crf=18, threads=2)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--cores", default="0", help="taskset core list for each case")
  parser.add_argument("--case", help=argparse.SUPPRESS)
  parser.add_argument("--video", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.case:
    print(json.dumps(run_case(args.case, Path(args.video), args.repeats)))
    return
  print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; each case on cores {args.cores}")
  with tempfile.TemporaryDirectory() as tmp:
    clips = {"640x360 30 fps": (CLIP, 30.0), "1920x1080 50 fps": (upscaled_clip(Path(tmp)), 50.0)}
    rows = {}
    for label, (path, fps) in clips.items():
      for case in ("decode", "frontend"):
        cmd = ["taskset", "-c", args.cores, sys.executable, __file__, "--case", case, "--video", str(path)]
        proc = subprocess.run([*cmd, "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        med, best = float(np.median(r["seconds"])), float(np.min(r["seconds"]))
        ms = 1000 * med / r["frames"]
        rows[(label, case)] = ms
        extra = ""
        if case == "frontend":
          extra = f", {r['detected']}/{r['frames']} frames with the face, create {r['create_ms']:.0f} ms"
        print(
          f"{label:16s} {case:8s} {ms:6.2f} ms/frame (min {1000 * best / r['frames']:.2f}), "
          f"real-time factor {r['frames'] / fps / med:5.2f}{extra}"
        )
  ms = rows[("1920x1080 50 fps", "frontend")]
  hours = NEMO_VIDEOS * NEMO_FRAMES * ms / 1000 / 3600
  print(
    f"UvA-NEMO ({NEMO_VIDEOS} videos x ~{NEMO_FRAMES} frames at 1920x1080): {hours:.2f} h on one core, "
    f"~{hours / 2:.2f} h with two workers (front end only, {ms:.1f} ms/frame)"
  )


if __name__ == "__main__":
  main()
