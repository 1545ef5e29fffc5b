"""The shared decision core of 247trader: bars, kernels, strategies, risk and the `step` kernel.

Nothing in this package does I/O; `sim` and `live_bridge` drive it.
"""
