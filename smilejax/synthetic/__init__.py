"""The built-in synthetic smile corpus (spec: ../shared/spec/synthetic.md, normative).

A test bed, not a model of real smiles: it writes the files a real dataset has (videos/, openface/,
smile_intensities/, folds/), so the project's readers, features and models run end to end without the licensed
UvA-NEMO videos. Accuracies measured on it say nothing about real smiles. Pipeline per video:

  subject traits, latent smile [§1]             latents.draw_subject, latents.sample_video_latents
  -> 17 latent AU series, envelope a(t) [§2]    series.latent_au_series
  -> OpenFace-like observation, SI [§3]         observation.observe_openface, observation.smile_intensity
  -> rendered 64x64 RGB face [§4]               render.render_frames
  -> corpus files, folds, latent.csv [§5]       corpus.simulate_video, corpus.generate_corpus, corpus.ensure_corpus

Every draw is keyed by (seed, subject, video, stream) (§5), so the same seed gives byte-identical files.

Generator 2.0.0 (render version 2, §4): faces framed as a face detector frames them, smile magnitudes from real
clips, and pixel-mostly cues a small CNN can use that the AU CSV lacks: crow's-feet contrast wr median 0.30 posed /
0.62 spontaneous, smile-linked head pitch 0.6 / 1.25 deg. Bayes check (§1; quadratic logistic regression on the
latents, 20 000+ videos, half the subjects each way): all latents 0.920, (ln wr, ln head) alone 0.802, the
AU-visible ones 0.862. What the pixels carry: ``probe`` (§6.7, §6.8).
"""

from smilejax.synthetic.corpus import (
  GENERATOR_JSON,
  GENERATOR_VERSION,
  LATENT_CSV,
  SimulatedVideo,
  assign_folds,
  ensure_corpus,
  generate_corpus,
  generator_info,
  is_complete_corpus,
  read_latent_csv,
  simulate_series,
  simulate_video,
)
from smilejax.synthetic.latents import (
  CONFIGS,
  Subject,
  SyntheticConfig,
  VideoLatents,
  bayes_features,
  draw_latent_table,
  draw_subject,
  get_config,
  sample_video_latents,
)
from smilejax.synthetic.observation import observe_openface, smile_intensity
from smilejax.synthetic.render import eye_corner_patch, render_frames
from smilejax.synthetic.series import latent_au_series

__all__ = [
  "CONFIGS",
  "GENERATOR_JSON",
  "GENERATOR_VERSION",
  "LATENT_CSV",
  "SimulatedVideo",
  "Subject",
  "SyntheticConfig",
  "VideoLatents",
  "assign_folds",
  "bayes_features",
  "draw_latent_table",
  "draw_subject",
  "ensure_corpus",
  "eye_corner_patch",
  "generate_corpus",
  "generator_info",
  "get_config",
  "is_complete_corpus",
  "latent_au_series",
  "observe_openface",
  "read_latent_csv",
  "render_frames",
  "sample_video_latents",
  "simulate_series",
  "simulate_video",
  "smile_intensity",
]
