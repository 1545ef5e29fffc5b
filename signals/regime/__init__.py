"""Market regime kernel (layer 0); see `signals/regime/nb.py`."""

from signals.regime.nb import regime_nb, regime_warmup_bars

__all__ = ["regime_nb", "regime_warmup_bars"]
