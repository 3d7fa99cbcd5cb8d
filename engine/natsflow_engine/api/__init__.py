"""Request-reply API over NATS."""
