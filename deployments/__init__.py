"""Deployments of the self-play flow (see serve.py)."""
