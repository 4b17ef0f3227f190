"""Base URL checks, done before any credential is sent."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from code42_hook.errors import Code42ConfigError

# Code42 Incydr API hosts: https://api.<region>.code42.com
CODE42_REGIONS = ("us", "us2", "ie", "gov", "us7", "uk", "au", "ca", "de", "za")
CODE42_API_HOSTS = frozenset(f"api.{region}.code42.com" for region in CODE42_REGIONS)


def sandbox_hosts() -> frozenset[str]:
    """Extra host names treated like loopback (the sandbox service of docker-compose), set by the
    platform team in ``SECURITYCOACH_SANDBOX_HOSTS`` (comma-separated), never by a connection."""
    return frozenset(h.strip().lower() for h in os.environ.get("SECURITYCOACH_SANDBOX_HOSTS", "").split(",") if h.strip())


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.lower() in sandbox_hosts():
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(value: str | None) -> str:
    """``scheme://host[:port]`` of a Code42 API (any loopback host is allowed, for the sandbox).

    A value without a scheme means https. Plain http is refused unless the host is loopback; a
    host that is not a Code42 API host (``api.<region>.code42.com``) is refused.
    """
    raw = (value or "").strip()
    if not raw:
        raise Code42ConfigError("Base URL is empty: set the connection's host, e.g. https://api.us.code42.com")
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise Code42ConfigError(f"Base URL {raw!r} is not an http(s) URL")
    loopback = is_loopback(host)
    if parts.scheme == "http" and not loopback:
        raise Code42ConfigError(f"Base URL {raw!r} uses plain http; Code42 needs https (http only for loopback)")
    if not loopback and host not in CODE42_API_HOSTS:
        raise Code42ConfigError(
            f"Base URL {raw!r} is not a Code42 API host; expected https://api.<region>.code42.com "
            f"with region one of {', '.join(CODE42_REGIONS)}"
        )
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}"
