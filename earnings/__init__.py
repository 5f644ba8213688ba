"""Earnings: rev-share programs, the append-only ledger, payouts, explanations, forecasts."""
