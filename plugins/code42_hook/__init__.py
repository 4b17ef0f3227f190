"""The Code42 Incydr hook: connection, OAuth, endpoints, records (transport: ``apiclient``).

Names are imported on first use: Airflow's provider discovery imports ``code42_hook.provider_info``
(and so this package) while ``apiclient.transport`` may still be importing Airflow.
"""

from importlib import import_module

_HOME = {
    "Actor": "records", "Alert": "records", "AlertRule": "records", "FileEvent": "records", "Session": "records",
    "Code42ApiError": "errors", "Code42ConfigError": "errors", "Code42Error": "errors",
    "Code42PayloadError": "errors",
    "Code42Hook": "hook", "Code42Settings": "hook", "HookStats": "hook", "connect": "hook",
}
__all__ = [  # resolved by __getattr__
    "Actor", "Alert", "AlertRule", "Code42ApiError", "Code42ConfigError", "Code42Error", "Code42Hook",
    "Code42PayloadError", "Code42Settings", "FileEvent", "HookStats", "Session", "connect",
]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'code42_hook' has no attribute {name!r}")
    return getattr(import_module(f"code42_hook.{_HOME[name]}"), name)
