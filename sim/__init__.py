"""The backtest driver, fill model, metrics, reports, regression gate, tracking and sweeps."""
