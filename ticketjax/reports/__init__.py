"""Reports across runs and tools over saved networks, and shared plot pieces."""
