"""Partner forecasts (quarterly commit and best case per product line, with revision
history), their roll-up, forecast accuracy once a quarter closes, pipeline velocity,
concentration guardrails, finance exports (CSV) and the partner scorecard. The formulas are
documented in docs/recurring.md ("Forecasts, guardrails and exports")."""
