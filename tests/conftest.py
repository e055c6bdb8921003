"""Test-session set-up: the CPU is presented to JAX as two devices (as bin/ does on a 2-core machine), so the
data-parallel training step is exercised; this must happen before any test starts JAX's backends."""

from smilejax import runtime

runtime.configure_cpu_devices(2)
