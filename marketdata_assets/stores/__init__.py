"""Where it lands."""
