"""The KnowBe4 hooks: the Reporting API (KSAT user directory and groups, the account) and the User
Event API (events on the KSAT users' timelines)."""

from knowbe4_hook.events import EventsRateLimited, KnowBe4EventsHook, OutcomeUnknown
from knowbe4_hook.hook import KnowBe4Hook, KsatGroup, KsatUser

__all__ = ["EventsRateLimited", "KnowBe4EventsHook", "KnowBe4Hook", "KsatGroup", "KsatUser", "OutcomeUnknown"]
