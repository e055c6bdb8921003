"""All AUDA features of a padded batch with known phases as one pure, traceable function (spec auda.md sections 6-10).

``batching.extract_batch`` computes the same features in three compiled pieces with the segment frames packed on the
host (fast, not traceable); this is the version to use inside a caller's ``jit``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from smilejax.auda.framewise import framewise_core
from smilejax.auda.layout import AudaOptions, phase_labels
from smilejax.auda.segments import gather_rows, segments_core, slot_indices
from smilejax.constants import BASE_FPS

OUTPUTS = ("frame", "au_wise", "cross_au")


def _features_core(au_BxTxA, si_BxT, phases_BxT, lengths_B, *, fps: float, opts: AudaOptions, want: tuple):
  """All requested features of a padded batch: one row of T slots per phase label (:func:`slot_indices`)."""
  b, t_len, n_au = au_BxTxA.shape
  frame, series = framewise_core(au_BxTxA, si_BxT, lengths_B, fps=fps, opts=opts, want_frame="frame" in want)
  out = {"frame": frame} if "frame" in want else {}
  seg_want = tuple(w for w in want if w != "frame")
  if seg_want:
    lengths = jnp.clip(jnp.asarray(lengths_B).astype(jnp.int32), 1, t_len)
    labels = phase_labels(opts)
    idx, counts = slot_indices(jnp.asarray(phases_BxT).astype(jnp.int32), lengths, labels, t_len)
    idx = jnp.transpose(idx, (2, 0, 1))  # [S, B, L]
    row_label = jnp.broadcast_to(jnp.arange(len(labels), dtype=jnp.int32), counts.shape)
    n_ch = n_au * (1 + 2 * len(opts.windows))
    out.update(
      segments_core(
        gather_rows(series, idx, n_ch), idx, counts, row_label, fps=fps, opts=opts, n_au=n_au, want=seg_want
      )
    )
  return out


def compute_features(
  au_BxTxA, si_BxT, phases_BxT, lengths_B, *, fps: float = BASE_FPS, options=None, outputs: Sequence[str] = OUTPUTS
) -> dict[str, jax.Array]:
  """Pure, jittable feature computation for a padded batch with given phases (spec sections 6-10).

  Returns a dict with the requested ``outputs``: "frame" [B, T, 154] (zeros beyond each length; section 7),
  "au_wise" [B, 476] (section 8), "cross_au" [B, 4352] (section 9), formulas in ``framewise`` and ``segments``.
  ``fps``, ``options`` and ``outputs`` are static. No input validation (see ``extract_batch``).
  """
  opts = AudaOptions.from_config(options)
  unknown = set(outputs) - set(OUTPUTS)
  if unknown:
    raise ValueError(f"unknown outputs {sorted(unknown)} (known: {OUTPUTS})")
  want = tuple(o for o in OUTPUTS if o in outputs)
  return _features_core(
    jnp.asarray(au_BxTxA),
    jnp.asarray(si_BxT),
    jnp.asarray(phases_BxT),
    jnp.asarray(lengths_B),
    fps=float(fps),
    opts=opts,
    want=want,
  )
