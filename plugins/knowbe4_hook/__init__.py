"""The KnowBe4 hooks: the Reporting API (KSAT user directory and groups, the account) and the User
Event API (events on the KSAT users' timelines)."""

from knowbe4_hook.errors import (
    EventsRateLimited,
    KnowBe4ApiError,
    KnowBe4ConfigError,
    KnowBe4Error,
    KnowBe4PayloadError,
    OutcomeUnknown,
)
from knowbe4_hook.events import KnowBe4EventsHook
from knowbe4_hook.hook import KnowBe4Hook, KsatGroup, KsatUser

__all__ = [
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
