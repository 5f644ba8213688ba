"""Tenancy and identity: vendors, partner organisations, users, roles, API keys."""
