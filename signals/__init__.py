"""Signals: daily per-partner performance and engagement figures (docs/signals.md)."""
