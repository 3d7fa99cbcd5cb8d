"""Kubernetes operator (Kopf)."""
