"""pytest-benchmark benchmarks (off by default; run with --benchmark-enable)."""
