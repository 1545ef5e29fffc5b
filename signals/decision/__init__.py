"""Stage 2 of the decision path: the `step` kernel (risk, sizing) and `apply_fill` (accounting)."""
