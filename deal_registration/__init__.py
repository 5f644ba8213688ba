"""Partner submissions the vendor validates: deal registrations and sale claims."""
