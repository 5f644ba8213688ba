"""Infrastructure shared by every domain: database, Redis, ids, clock, outbox."""
