"""AUDA: action-unit dynamics features (spec ../shared/spec/auda.md; paper section 2.1).

Pipeline: 17 AU intensity series + the smile-intensity (SI) series
-> sliding-window regression, omega = 9 and 27 frames at 50 fps (``regression``; sections 2-4)
-> phase detection on the SI: onset, apex, offset (``phases``; section 5)
-> 154 frame-wise features per frame (``framewise``; section 7)
-> segments, unions of phases (section 6): AU-wise 119 and cross-AU 1088 per segment (``segments``; sections 8-9)
-> whole-video vectors of 476 and 4352 (section 10), with the layout, names and options in ``layout``.
``batching`` runs it for a video, a padded batch or a corpus; ``features.compute_features`` is the traceable form.
"""

from smilejax.auda.batching import AudaFeatures, AudaFeaturesBatch, extract, extract_batch, extract_corpus
from smilejax.auda.features import compute_features
from smilejax.auda.layout import (
  AU_PAIRS,
  SEGMENT_LABELS,
  AudaOptions,
  feature_dims,
  pair_index,
  scale_window,
  scaled_windows,
)
from smilejax.auda.phases import detect_phases, detect_phases_batch
from smilejax.auda.regression import Dynamics, dynamics, second_order_trend, trend

__all__ = [
  "AudaOptions",
  "AudaFeatures",
  "AudaFeaturesBatch",
  "Dynamics",
  "SEGMENT_LABELS",
  "AU_PAIRS",
  "scale_window",
  "scaled_windows",
  "feature_dims",
  "pair_index",
  "trend",
  "dynamics",
  "second_order_trend",
  "detect_phases",
  "detect_phases_batch",
  "compute_features",
  "extract",
  "extract_batch",
  "extract_corpus",
]
