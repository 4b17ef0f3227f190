"""The KnowBe4 Reporting API hook: the KSAT user directory and groups."""

from knowbe4_hook.hook import KnowBe4Hook, KsatGroup, KsatUser

__all__ = ["KnowBe4Hook", "KsatGroup", "KsatUser"]
