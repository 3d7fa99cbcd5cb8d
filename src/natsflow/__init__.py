"""natsflow."""
