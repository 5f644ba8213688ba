"""Customer accounts and subscriptions attributed to partners (docs/recurring.md)."""
