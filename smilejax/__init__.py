"""smilejax: posed vs spontaneous smiles from AU dynamics (AUDA), RealSmileNet and their late fusion, in JAX/Flax.

Importing the package sets one JAX option for the whole process: ``jax_threefry_partitionable = False``. With JAX's
default (True since 0.5), XLA on CPU compiles every random draw of a jitted program far more slowly: six Bernoulli
dropout masks of shape 16x50x12x12x6 took 16.4 s to compile and run against 2.4 s with the option off (2 shared
cores, jax 0.10.2), and each training step holds such draws. The option changes which random numbers a key gives,
not their distribution; results stay deterministic for a given seed. Partitionable draws only matter for arrays
drawn whole and then sharded over devices; the data-parallel training step (``smilejax.train``) instead draws each
video's dropout masks from that video's own key.
"""

import jax as _jax

_jax.config.update("jax_threefry_partitionable", False)
