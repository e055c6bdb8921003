"""Where the RealSmileNet training step's time goes: train-mode forward alone vs value-and-gradient, one core.

    taskset -c 0 .venv/bin/python benchmarks/rsn_forward_backward_split.py

B = 16, T = 50, 48x48 frames, the default model (phase convolutions), median of 8 calls after a warm-up.
"""
import os, time, numpy as np
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
import jax, jax.numpy as jnp, optax
from smilejax import models
model = models.build("realsmilenet")
b, t = 16, 50
rng = np.random.default_rng(0)
frames = jnp.asarray(rng.random((b, t, 48, 48, 3), dtype=np.float32)); lengths = jnp.full((b,), t, jnp.int32)
y = jnp.asarray(rng.integers(0, 2, b).astype(np.float32))
v = jax.jit(lambda: model.init({"params": jax.random.key(0)}, frames[:1, :2], lengths[:1] * 0 + 2, train=False))()
def loss_fn(p, s, key):
    (logit, _), upd = model.apply({"params": p, "batch_stats": s}, frames, lengths, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    return optax.sigmoid_binary_cross_entropy(logit, y).mean()
fwd = jax.jit(loss_fn); grad = jax.jit(jax.grad(loss_fn))
def tm(f, n=8):
    jax.block_until_ready(f(v["params"], v["batch_stats"], jax.random.key(1)))
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); jax.block_until_ready(f(v["params"], v["batch_stats"], jax.random.key(1))); ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e3
print("train-mode forward ms", tm(fwd)); print("grad ms", tm(grad))
