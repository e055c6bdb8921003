"""smilejax: posed vs spontaneous smiles from AU dynamics (AUDA), RealSmileNet and their late fusion, in JAX/Flax.

Importing the package sets ``jax_threefry_partitionable = False`` for the process: with JAX's default, XLA on CPU
compiles random draws inside jitted programs far more slowly (benchmarks/README.md). The option changes which random
numbers a key gives, not their distribution. The data-parallel training step draws each video's dropout masks from
that video's own key, so it does not need partitionable draws.
"""

import jax as _jax

_jax.config.update("jax_threefry_partitionable", False)
