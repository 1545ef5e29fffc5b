"""Slow, obvious reference implementations of the kernels, and the kernel registry."""
