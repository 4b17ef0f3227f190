"""Airflow plugin: a ``code42`` / ``knowbe4`` / ``knowbe4_events`` connection stores its Base URL's
port in the connection's ``port`` column whenever it is saved, so the UI's Test button works.

Why: Airflow 3.3.2's UI tests a saved connection by posting it back with ``"port": Number(port)``
(``0`` when the column is NULL) and the password masked as ``***``; the api-server then refuses with
400 "The host or port to test differs from the stored connection" when that port is not the stored
one, before any hook runs (fixed upstream in apache/airflow PR #73298, not in 3.3.2). These types
hide the port field: the Base URL carries the port. With the column holding the Base URL's port
(an explicit one, else 443 for https and 80 for http), the posted port is the stored one, the
api-server swaps the stored secret in for the mask, and the hook's own ``test_connection`` answers.
The hooks read the Base URL only; the column is derived from it, never typed in.

Loaded by the api-server through the ``airflow.plugins`` entry point (pyproject.toml).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from code42_hook.provider_info import get_provider_info

CONNECTION_TYPES = frozenset(c["connection-type"] for c in get_provider_info()["connection-types"])
_DEFAULT_PORTS = {"https": 443, "http": 80}


def base_url_port(host: str | None) -> int | None:
    """The port a Base URL reaches (no scheme means https, as the hooks read it); None when it is
    not an http(s) URL (the hook's Test then names the problem, if the UI gets that far)."""
    raw = (host or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    try:
        port = parts.port
    except ValueError:  # not a number or out of range
        return None
    return port or _DEFAULT_PORTS.get(parts.scheme)


def store_base_url_port(mapper, db_connection, target) -> None:
    """SQLAlchemy ``before_insert`` / ``before_update`` listener on Airflow's ``Connection``."""
    if target.conn_type in CONNECTION_TYPES:
        target.port = base_url_port(target.host)


def register() -> None:
    from airflow.models.connection import Connection
    from sqlalchemy import event

    for when in ("before_insert", "before_update"):
        if not event.contains(Connection, when, store_base_url_port):
            event.listen(Connection, when, store_base_url_port)


class ConnectionPortPlugin(AirflowPlugin):
    name = "securitycoach_connection_port"

    @classmethod
    def on_load(cls, *args, **kwargs) -> None:
        register()
