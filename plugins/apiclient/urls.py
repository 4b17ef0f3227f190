"""Base URL checks, done before any credential is sent."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from apiclient.errors import ConfigError


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


def normalize_base_url(value: str | None, *, api: str, hosts: frozenset[str], expected: str, example: str,
                       error: type[ConfigError] = ConfigError) -> str:
    """``scheme://host[:port]`` of one of the API's ``hosts`` (any loopback host is allowed, for the
    sandbox); else ``error``, naming ``api`` and what was ``expected``.

    A value without a scheme means https. Plain http is refused unless the host is loopback.
    """
    raw = (value or "").strip()
    if not raw:
        raise error(f"{api} Base URL is empty: set the connection's host, e.g. {example}")
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise error(f"{api} Base URL {raw!r} is not an http(s) URL")
    loopback = is_loopback(host)
    if parts.scheme == "http" and not loopback:
        raise error(f"{api} Base URL {raw!r} uses plain http; {api} needs https (http only for loopback)")
    if not loopback and host not in hosts:
        raise error(f"{api} Base URL {raw!r} is not {expected}")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}"
