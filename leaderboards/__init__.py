"""Sales contests and their live leaderboards (Redis sorted sets, rebuilt from SQL events)."""
