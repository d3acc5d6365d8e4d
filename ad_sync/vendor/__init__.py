"""Directory vendors' quirks, one module per vendor (only Microsoft AD so far)."""
