"""Deal registrations: big-deal submissions, conflict detection, review, protection, expiry."""
