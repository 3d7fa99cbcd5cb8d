"""Trigger server: external NATS subjects to workflow launches, exactly once."""
