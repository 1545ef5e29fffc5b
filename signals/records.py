"""Record dtypes shared by the `step` kernel, the simulator and the live bridge."""

import numpy as np

ORDER_DT = np.dtype(
    [
        ("bar_no", np.int64),  # absolute bar number (ts_ns // bar_ns) of the decision bar
        ("symbol", np.int64),  # column index into the panel's symbols
        ("side", np.int64),  # Side.Buy / Side.Sell
        ("order_type", np.int64),  # OrderType
        ("purpose", np.int64),  # Purpose
        ("strategy", np.int64),  # index into the enabled strategies
        ("qty", np.float64),  # base units; 0 for a market buy sized by notional
        ("notional", np.float64),  # quote units incl. fee, for market buys; else 0
        ("limit_price", np.float64),  # quote per base; NaN for market orders
        ("ref_price", np.float64),  # the decision bar's close
        ("stop_pct", np.float64),  # fraction below the fill price for the stop (entries)
        ("take_pct", np.float64),  # fraction above the fill price for take-profit; 0 = none
    ],
    align=True,
)
