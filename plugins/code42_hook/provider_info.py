"""Airflow provider registration: the ``code42`` connection type with the seed's three fields."""

from __future__ import annotations


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
                    "placeholders": {
                        "host": "https://api.us.code42.com",
                        "login": "key-...",
                        "extra": '{"rate_limit_per_minute": 120}',
                    },
                },
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
            },
            {
                "connection-type": "knowbe4_events",
                "hook-class-name": "knowbe4_hook.events.KnowBe4EventsHook",
                "hook-name": "KnowBe4 User Event API",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {"host": "https://api.events.knowbe4.com",
                                     "extra": '{"seats": 500, "max_retry_wait": 60}'},
                },
            },
        ],
    }
