"""Segment statistics: AU-wise (119 per segment) and cross-AU (1088 per segment) AUDA features (spec auda.md
sections 6, 8-10).

A segment is a union of phase labels; its statistics are taken over its frames only, which are first packed into
rows of slots per label (:func:`row_indices` on the host, :func:`slot_indices` when traced), so that they are plain
reductions instead of masked ones over the whole sequence. Statistics are computed per row, then per label, then
combined into the segments. The packed frames are gathered slot-major ([slots, B, rows, channels]), so that the
reductions over the slots are trees of element-wise operations over a major axis (``perf.reduce_major``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from smilejax.auda.layout import SEGMENT_LABELS, AudaOptions, au_pairs, phase_labels
from smilejax.auda.perf import bucketed, materialize, reduce_major, runtime_one

ROW_SIZE = 32  # slots per row of label frames (row_indices)


@functools.lru_cache(maxsize=None)
def _circulant_pairs(n_au: int):
  """Pairs as circular shifts: rows (s, a) = (a, (a + s) mod n) for s = 1 .. n//2 cover every unordered pair once
  (for even n the shift n/2 is taken for a < n/2 only). A shift is a static slice + concatenate along the AU axis, far
  cheaper than a gather. Returns (shifts, order, flipped): ``order[p]`` is the circulant row of spec pair p and
  ``flipped[p]`` tells that the row holds (j, i), i.e. Delta_j - Delta_i."""
  rows = []
  shifts = []
  for sft in range(1, n_au // 2 + 1):
    count = n_au // 2 if (n_au % 2 == 0 and sft == n_au // 2) else n_au
    shifts.append((sft, count))
    rows += [(a, (a + sft) % n_au) for a in range(count)]
  where = {pair: k for k, pair in enumerate(rows)}
  order, flipped = [], []
  for i, j in au_pairs(n_au):
    if (i, j) in where:
      order.append(where[(i, j)])
      flipped.append(False)
    else:
      order.append(where[(j, i)])
      flipped.append(True)
  return tuple(shifts), np.array(order, np.int32), np.array(flipped, bool)


def slot_indices(phases_BxT, lengths_B, labels: tuple[int, ...], n_slots: int):
  """Frames of each phase label, in time order, packed into ``n_slots`` slots: (frame_idx [B, L, S], counts [B, L]).

  Slots beyond a label's count repeat its first frame, so a plain max / min / first-argmax over the slots is the
  statistic over the label's frames (sums use the count). ``n_slots`` must be >= every count (the callers
  guarantee it). Traceable: ``features.compute_features`` packs with it (:func:`row_indices` is the host's).
  """
  b, t_len = phases_BxT.shape
  tt = jnp.arange(t_len)
  ph = jnp.where(tt[None, :] < lengths_B[:, None], phases_BxT, -1)
  n_lab = len(labels)
  group = jnp.full((b, t_len), n_lab)
  counts = []
  for q, lab in enumerate(labels):
    is_lab = ph == lab
    group = jnp.where(is_lab, q, group)
    counts.append(jnp.sum(is_lab, axis=1))
  counts = jnp.stack(counts, axis=1)  # [B, L]
  order = jnp.argsort(group * t_len + tt[None, :], axis=1)  # grouped by label, time order inside
  offsets = jnp.cumsum(counts, axis=1) - counts
  j = jnp.arange(n_slots)
  pos = offsets[:, :, None] + jnp.minimum(j[None, None, :], jnp.maximum(counts[:, :, None] - 1, 0))
  pos = jnp.minimum(pos, t_len - 1).reshape(b, n_lab * n_slots)
  idx = jnp.take_along_axis(order, pos, axis=1).reshape(b, n_lab, n_slots)
  return idx.astype(np.int32), counts.astype(np.int32)


def row_indices(phases_BxT, lengths_B, labels: tuple[int, ...], row_size: int, row_bucket: int = 4):
  """Host (NumPy) packing of each video's label frames into rows of ``row_size`` slots:
  (frame_idx [B, R, row_size], row_count [B, R], row_label [B, R]).

  A label with n frames fills ceil(n / row_size) rows, in time order (row_label = its index in ``labels``); slots
  beyond a row's count repeat the row's first frame (so max / min / first-argmax over the slots are the row's), and
  unused rows have count 0 and label -1. R = the most rows any video needs, rounded up to a multiple of
  ``row_bucket``. Against one row of the longest label's size per label (:func:`slot_indices`) this wastes at most
  ``row_size`` - 1 slots per label and video instead of padding every label to the longest one in the chunk.
  """
  phases_BxT = np.asarray(phases_BxT)
  b, t_len = phases_BxT.shape
  real = np.arange(t_len)[None, :] < np.asarray(lengths_B)[:, None]
  masks = [(phases_BxT == lab) & real for lab in labels]  # [B, T] per label
  counts = np.stack([m.sum(axis=1) for m in masks], axis=1)  # [B, L]
  rows_per = -(-counts // row_size)
  row_off = np.cumsum(rows_per, axis=1) - rows_per
  n_rows = bucketed(int(rows_per.sum(axis=1).max()), row_bucket)
  # The k-th frame of label q (time order) goes to slot k of the label's rows, i.e. flat slot row_off * row_size + k
  # of the video: np.nonzero lists the frames in (video, time) order, so k is the position among the video's ones.
  idx = np.full((b, n_rows * row_size), -1, np.int32)
  row_label = np.full((b, n_rows), -1, np.int32)
  r = np.arange(n_rows)
  for q, m in enumerate(masks):
    bi, ti = np.nonzero(m)
    rank = np.arange(len(bi)) - (np.cumsum(counts[:, q]) - counts[:, q])[bi]
    idx[bi, row_off[bi, q] * row_size + rank] = ti
    row_label[(r >= row_off[:, q : q + 1]) & (r < (row_off + rows_per)[:, q : q + 1])] = q
  idx = idx.reshape(b, n_rows, row_size)
  row_count = (idx >= 0).sum(axis=2).astype(np.int32)
  idx = np.where(idx < 0, np.maximum(idx[:, :, :1], 0), idx)  # repeats of the row's first frame
  return idx, row_count, row_label


def gather_rows(series_BxTxD, idx_SxBxR, n_ch: int):
  """The first ``n_ch`` frame-wise columns at the slot frames, slot-major: [S, B, R, n_ch] (a gather of whole rows
  of the time-major series; ``idx_SxBxR`` holds frame indices)."""
  b, t_len, d = series_BxTxD.shape
  flat = idx_SxBxR + (jnp.arange(b, dtype=idx_SxBxR.dtype) * t_len)[None, :, None]
  return jnp.take(series_BxTxD.reshape(b * t_len, d), flat, axis=0)[..., :n_ch]


def segments_core(
  g_SxBxRxC, idx_SxBxR, counts_BxR, row_label_BxR, *, fps: float, opts: AudaOptions, n_au: int, want: tuple
):
  """AU-wise (section 8) and cross-AU (section 9) vectors [B, S x 119], [B, S x 1088] from slot-packed series.

  Over the frames F of each segment (section 6), per AU a and window w (column order: ``layout``):
  AU-wise: max_F x_a - min_F x_a, mean_F x_a, max_F x_a, mean_F Delta_{a,w}, max_F Delta_{a,w};
  cross-AU, per pair (i, j): min_F and max_F of |Delta_{i,w} - Delta_{j,w}| (signed without ``cross_au_abs``),
  (argmax_F adj Delta_{i,w} - argmax_F adj Delta_{j,w}) / fps and the same with argmin (first frame on ties;
  frames instead of seconds with ``time_unit="frames"``).

  ``g_SxBxRxC``: the series at the slot frames, slot-major (:func:`gather_rows`), channels in the frame-wise
  column order x (A), delta (W blocks of A), delta_adj (W blocks of A); ``idx_SxBxR`` the slot frames. Each row r of
  a video holds frames of one phase label ``row_label_BxR`` (its index in ``layout.phase_labels``; -1: unused row),
  in time order, ``counts_BxR`` of them; slots beyond the count repeat the row's first frame (so max / min /
  first-argmax over the slots are the row's). Statistics are first taken per row over its slots (k-ary trees over
  the major slot axis: element-wise vector operations), then per phase label over its rows, then combined into the
  configured segments (unions of labels): max / min of maxima / minima, sums of sums, and for the arg-extremes the
  earliest frame among the rows / labels that reach the extreme. Empty segments give zeros.
  """
  g = g_SxBxRxC
  dtype = g.dtype
  n_slots, b, n_rows, _ = g.shape
  nw = len(opts.windows)
  labels = phase_labels(opts)
  n_lab = len(labels)
  seg_labels = [[labels.index(lab) for lab in SEGMENT_LABELS[seg]] for seg in opts.segments]
  n_seg = len(seg_labels)
  big = jnp.iinfo(jnp.int32).max
  one = runtime_one(counts_BxR)
  row_of = [(row_label_BxR == q) & (counts_BxR > 0) for q in range(n_lab)]  # [B, R] each
  counts_BxL = jnp.stack([jnp.sum(jnp.where(m, counts_BxR, 0), axis=1) for m in row_of], axis=1)
  present = counts_BxL > 0  # [B, L]
  seg_count = jnp.stack([sum(counts_BxL[:, k] for k in ks) for ks in seg_labels], axis=1)  # [B, S]
  nonempty = seg_count > 0
  inv_count = 1.0 / jnp.maximum(seg_count, 1).astype(dtype)
  gx = g[..., :n_au]  # [slots, B, R, A]
  gd = g[..., n_au : n_au * (1 + nw)]  # [slots, B, R, W A] (window-major)
  ga = g[..., n_au * (1 + nw) : n_au * (1 + 2 * nw)]
  # 1 for the first ``count`` slots of each row (each frame once in the sums), 0 for the repeats
  first_uses = (jnp.arange(n_slots)[:, None, None] < counts_BxR[None])[..., None]  # [slots, B, R, 1]

  def to_labels(stat, reduce, empty, row_axis=1):  # per-row statistic (rows on row_axis) -> per label [B, L, ...]
    shape = [b] + [1] * (stat.ndim - 1)
    shape[row_axis] = n_rows
    return jnp.stack([reduce(jnp.where(m.reshape(shape), stat, empty), axis=row_axis) for m in row_of], axis=1)

  def per_segment(stat_BxLx, op, empty):  # [B, L, ...] -> [B, S, ...] (absent labels replaced by ``empty``)
    stat_BxLx = jnp.where(present.reshape((b, n_lab) + (1,) * (stat_BxLx.ndim - 2)), stat_BxLx, empty)
    return jnp.stack([functools.reduce(op, [stat_BxLx[:, k] for k in ks]) for ks in seg_labels], axis=1)

  def interlace(a):  # [..., W A] (window-major) -> [..., A W] flattened (AU-major, window-interlaced)
    return jnp.swapaxes(a.reshape(a.shape[:-1] + (nw, n_au)), -1, -2).reshape(a.shape)

  out = {}
  if "au_wise" in want:
    x_max = per_segment(
      to_labels(reduce_major(gx, jnp.maximum, -jnp.inf, one), jnp.max, -jnp.inf), jnp.maximum, -jnp.inf
    )  # [B, S, A]
    x_min = per_segment(to_labels(reduce_major(gx, jnp.minimum, jnp.inf, one), jnp.min, jnp.inf), jnp.minimum, jnp.inf)
    x_sum = per_segment(
      to_labels(reduce_major(jnp.where(first_uses, gx, 0.0), jnp.add, 0.0, one), jnp.sum, 0.0), jnp.add, 0.0
    )
    d_max = per_segment(
      to_labels(reduce_major(gd, jnp.maximum, -jnp.inf, one), jnp.max, -jnp.inf), jnp.maximum, -jnp.inf
    )  # [B, S, W A]
    d_sum = per_segment(
      to_labels(reduce_major(jnp.where(first_uses, gd, 0.0), jnp.add, 0.0, one), jnp.sum, 0.0), jnp.add, 0.0
    )
    x_min = jnp.where(nonempty[..., None], x_min, 0.0)
    seg = jnp.concatenate(
      [x_max - x_min, x_sum * inv_count[..., None], x_max, interlace(d_sum * inv_count[..., None]), interlace(d_max)],
      axis=-1,
    )  # [B, S, 119]
    out["au_wise"] = jnp.where(nonempty[..., None], seg, 0.0).astype(dtype).reshape(b, -1)
  if "cross_au" in want:
    shifts, order, flipped = _circulant_pairs(n_au)
    # min and max of the pair differences over each row's slots, then over each label's rows. Delta is
    # transposed to [slots, R, W, (A + 8) B] (the videos on the minor axis, the first 8 AUs repeated after the
    # last), so the circulant pair block of shift s, Delta_a - Delta_{(a + s) mod A}, is two plain slices, the
    # min / max over the slots an unrolled chain of element-wise operations over whole [R, W, A B] blocks (one
    # vectorised loop per shift, the differences never materialised), and the min / max over a label's rows a
    # masked tree over the major row axis. (Flattened to A B: XLA's layout assignment would otherwise keep A
    # physically minor and read it with strides.)
    n_wrap = max(sft for sft, _ in shifts)  # AUs repeated at the end: circular shifts
    dw = jnp.transpose(gd.reshape(n_slots, b, n_rows, nw, n_au), (0, 2, 3, 4, 1))
    dw = materialize(jnp.concatenate([dw, dw[:, :, :, :n_wrap]], axis=3), one)
    dw = dw.reshape(n_slots, n_rows, nw, (n_au + n_wrap) * b)  # [slots, R, W, (A + wrap) B]
    row_mask = [m.T[:, None, None, :] for m in row_of]  # [R, 1, 1, B] per label
    inf = np.array(np.inf, dtype)
    l_min, l_max = [], []  # [L, W, n, B] per shift
    for sft, count in shifts:
      lo_v = hi_v = None
      for q in range(n_slots):
        part = dw[q, :, :, : count * b] - dw[q, :, :, sft * b : (sft + count) * b]  # [R, W, n B]
        if opts.cross_au_abs:
          part = jnp.abs(part)
        lo_v = part if lo_v is None else jnp.minimum(lo_v, part)
        hi_v = part if hi_v is None else jnp.maximum(hi_v, part)
      lo_v = materialize(lo_v, one).reshape(n_rows, nw, count, b)
      hi_v = materialize(hi_v, one).reshape(n_rows, nw, count, b)
      l_min.append(jnp.stack([reduce_major(jnp.where(m, lo_v, inf), jnp.minimum, inf) for m in row_mask]))
      l_max.append(jnp.stack([reduce_major(jnp.where(m, hi_v, -inf), jnp.maximum, -inf) for m in row_mask]))
    # [L, W, P, B] (circulant rows) -> [B, L, P, W] -> segments, spec pair order
    c_min = per_segment(jnp.transpose(jnp.concatenate(l_min, axis=2), (3, 0, 2, 1)), jnp.minimum, jnp.inf)[:, :, order]
    c_max = per_segment(jnp.transpose(jnp.concatenate(l_max, axis=2), (3, 0, 2, 1)), jnp.maximum, -jnp.inf)[:, :, order]
    if not opts.cross_au_abs:  # a flipped row holds Delta_j - Delta_i: min and max swap and change sign
      fl = flipped[None, None, :, None]
      c_min, c_max = jnp.where(fl, -c_max, c_min), jnp.where(fl, -c_min, c_max)

    # the maximum and the minimum of delta_adj per row (trees over the slots), then the earliest slot reaching
    # each (a chain of selects from the last slot down; slots are in time order and repeats hold the row's first
    # frame, so the earliest slot has the earliest frame), then its frame (a small gather)
    idx_BxRxS = jnp.transpose(idx_SxBxR, (1, 2, 0))

    def first_frame(best):
      pos = jnp.zeros_like(best)
      for q in reversed(range(n_slots)):
        pos = jnp.where(ga[q] == best, float(q), pos)
      return jnp.take_along_axis(idx_BxRxS, materialize(pos, one).astype(jnp.int32), axis=2)  # [B, R, W A]

    best_2 = [reduce_major(ga, op, fill, one) for op, fill in ((jnp.maximum, -jnp.inf), (jnp.minimum, jnp.inf))]
    frame_2 = [first_frame(best) for best in best_2]

    def arg_extreme(best_r, frame_r):  # first frame of each segment's maximum, from the rows' [B, R, W A]
      best_l = to_labels(best_r, jnp.max, -jnp.inf)  # [B, L, W A]
      frame_l = jnp.stack(
        [
          jnp.min(jnp.where(m[..., None] & (best_r == best_l[:, q : q + 1]), frame_r, big), axis=1)
          for q, m in enumerate(row_of)
        ],
        axis=1,
      )
      best = per_segment(best_l, jnp.maximum, -jnp.inf)  # [B, S, W A]
      frames = []
      for s_i, ks in enumerate(seg_labels):
        f = jnp.full((b, nw * n_au), big, jnp.int32)
        for k in ks:
          hit = present[:, k, None] & (best_l[:, k] == best[:, s_i])
          f = jnp.minimum(f, jnp.where(hit, frame_l[:, k], big))
        frames.append(f)
      frames = jnp.stack(frames, axis=1)  # [B, S, W A]
      return jnp.swapaxes(frames.reshape(b, n_seg, nw, n_au), 2, 3)  # [B, S, A, W]

    i_max = arg_extreme(best_2[0], frame_2[0])
    i_min = arg_extreme(-best_2[1], frame_2[1])  # the max of -delta_adj
    pi, pj = au_pairs(n_au)[:, 0], au_pairs(n_au)[:, 1]
    scale = (1.0 / float(fps)) if opts.time_unit == "seconds" else 1.0
    t_up = (i_max[:, :, pi] - i_max[:, :, pj]).astype(dtype) * scale  # [B, S, P, W]
    t_down = (i_min[:, :, pi] - i_min[:, :, pj]).astype(dtype) * scale
    seg = jnp.concatenate(
      [
        c_min.reshape(b, n_seg, -1),
        c_max.reshape(b, n_seg, -1),
        t_up.reshape(b, n_seg, -1),
        t_down.reshape(b, n_seg, -1),
      ],
      axis=-1,
    )  # [B, S, 1088]
    out["cross_au"] = jnp.where(nonempty[..., None], seg, 0.0).astype(dtype).reshape(b, -1)
  return out


gather_rows_jit = jax.jit(gather_rows, static_argnames=("n_ch",))


@functools.partial(jax.jit, static_argnames=("fps", "opts", "n_au", "want"))
def segments_jit(g_SxBxRxC, idx_SxBxR, counts_BxR, row_label_BxR, *, fps, opts, n_au, want):
  return segments_core(g_SxBxRxC, idx_SxBxR, counts_BxR, row_label_BxR, fps=fps, opts=opts, n_au=n_au, want=want)
