"""Readers and writers of the file formats smilejax uses (NumPy only; no JAX, no models).

- ``openface``: OpenFace 2.x CSV (17 AU intensities, presence, failed-frame filling).
- ``video``: mp4 decode/encode (ffmpeg from imageio-ffmpeg) and bicubic frame resizing.
- ``intensity``: smile-intensity series (one value per line).
- ``nemo``: UvA-NEMO ids, fold lists (official lists as package data) and the corpus folder layout.
- ``auda_package``: the AUDA replication-data package layout (read and write).
Every bad input raises ``smilejax.errors.InputError`` with a one-line message naming the file.
"""

from smilejax.io.intensity import read_smile_intensity, write_smile_intensity
from smilejax.io.nemo import parse_video_id, read_fold_lists, scan_dataset, write_fold_lists
from smilejax.io.openface import OpenFaceSeries, read_openface_csv, write_openface_csv
from smilejax.io.video import VideoFrames, VideoReader, read_video, resize_frames, write_video

__all__ = [
  "OpenFaceSeries",
  "read_openface_csv",
  "write_openface_csv",
  "VideoFrames",
  "VideoReader",
  "read_video",
  "write_video",
  "resize_frames",
  "read_smile_intensity",
  "write_smile_intensity",
  "parse_video_id",
  "read_fold_lists",
  "write_fold_lists",
  "scan_dataset",
]
