"""Operations data for vendor admins: the outbox's stuck events."""
