"""Universe eligibility: liquidity, spread, tiers, bans, staleness and bad ticks per bar."""
