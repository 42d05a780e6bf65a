"""What we store."""
