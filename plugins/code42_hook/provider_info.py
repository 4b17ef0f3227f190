"""Airflow provider registration: the ``code42``, ``knowbe4`` and ``knowbe4_events`` connection types,
their labelled form fields and their typed settings (``conn-fields``, from ``apiclient.settings``).

Airflow-free (provider discovery imports it early): the settings tables are plain dataclasses.
"""

from __future__ import annotations

from apiclient.settings import ApiSettings
from knowbe4_hook.settings import EventsSettings

# Requests per minute per API client when the connection does not say: each API's documented
# (Code42) or advised ("a few requests per second": KnowBe4) limit. The hooks read it from here.
RATE_LIMITS = {"code42": 120.0, "knowbe4": 180.0, "knowbe4_events": 120.0}


def conn_fields(conn_type: str) -> dict:
    """The typed settings of one connection type as Airflow's ``conn-fields``."""
    fields = ApiSettings.conn_fields(rate_limit_per_minute=RATE_LIMITS[conn_type])
    return {**fields, **EventsSettings.conn_fields()} if conn_type == "knowbe4_events" else fields


def get_provider_info() -> dict:
    return {
        "package-name": "incydr-securitycoach",
        "name": "Code42 Incydr to SecurityCoach",
        "description": "Code42 Incydr hook and connection type for the SecurityCoach integration DAGs.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "code42",
                "hook-class-name": "code42_hook.hook.Code42Hook",
                "hook-name": "Code42 Incydr",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"login": "Client ID", "password": "Client Secret", "host": "Base URL"},
                    "placeholders": {"host": "https://api.us.code42.com", "login": "key-..."},
                },
                "conn-fields": conn_fields("code42"),
            },
            {
                "connection-type": "knowbe4",
                "hook-class-name": "knowbe4_hook.hook.KnowBe4Hook",
                "hook-name": "KnowBe4 Reporting API",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {"host": "https://us.api.knowbe4.com"},
                },
                "conn-fields": conn_fields("knowbe4"),
            },
            {
                "connection-type": "knowbe4_events",
                "hook-class-name": "knowbe4_hook.events.KnowBe4EventsHook",
                "hook-name": "KnowBe4 User Event API",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {"host": "https://api.events.knowbe4.com"},
                },
                "conn-fields": conn_fields("knowbe4_events"),
            },
        ],
    }
