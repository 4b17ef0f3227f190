"""The Code42 Incydr hook: connection, OAuth, transport (retry/throttle), endpoints, records."""

from code42_hook.errors import Code42ApiError, Code42ConfigError, Code42Error, Code42PayloadError
from code42_hook.hook import Code42Hook, Code42Settings, HookStats
from code42_hook.records import Actor, Alert, AlertRule, FileEvent, Session

__all__ = [
    "Actor",
    "Alert",
    "AlertRule",
    "Code42ApiError",
    "Code42ConfigError",
    "Code42Error",
    "Code42Hook",
    "Code42PayloadError",
    "Code42Settings",
    "FileEvent",
    "HookStats",
    "Session",
]
