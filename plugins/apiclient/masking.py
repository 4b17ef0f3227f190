"""Secrets never reach logs: every credential an auth object holds is registered with the masker."""

from __future__ import annotations


def mask(secret: str) -> None:
    """Register a value with Airflow's log masker (a no-op outside Airflow)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow is a dependency
        return
    mask_secret(secret)
