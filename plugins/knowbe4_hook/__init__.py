"""The KnowBe4 hooks: the Reporting API (KSAT user directory and groups, the account) and the User
Event API (events on the KSAT users' timelines).

Names are imported on first use: Airflow's provider discovery imports ``knowbe4_hook.settings``
(and so this package) while ``apiclient.transport`` may still be importing Airflow.
"""

from importlib import import_module

_HOME = {
    "EventsRateLimited": "errors", "KnowBe4ApiError": "errors", "KnowBe4ConfigError": "errors",
    "KnowBe4Error": "errors", "KnowBe4PayloadError": "errors", "OutcomeUnknown": "errors",
    "KnowBe4EventsHook": "events",
    "KnowBe4Hook": "hook", "KsatGroup": "hook", "KsatUser": "hook",
}
__all__ = [  # resolved by __getattr__
    "EventsRateLimited",
    "KnowBe4ApiError",
    "KnowBe4ConfigError",
    "KnowBe4Error",
    "KnowBe4EventsHook",
    "KnowBe4Hook",
    "KnowBe4PayloadError",
    "KsatGroup",
    "KsatUser",
    "OutcomeUnknown",
]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'knowbe4_hook' has no attribute {name!r}")
    return getattr(import_module(f"knowbe4_hook.{_HOME[name]}"), name)
