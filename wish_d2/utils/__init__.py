"""Small shared helpers: mask encoding and atomic file writes."""
