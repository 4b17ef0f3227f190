"""Mutable server state: tokens, clock, counters, faults. One instance per running sandbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter, defaultdict, deque

from incydr_sandbox.config import CLIENT_SECRET, CLIENTS, Faults, TenantConfig
from incydr_sandbox.identities import ksat_directory
from incydr_sandbox.tenant import Tenant


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SandboxState:
    def __init__(self, config: TenantConfig, faults: Faults | None = None) -> None:
        self.config = config
        self.tenant = Tenant(config)
        self.initial_faults = (faults or Faults()).as_dict()
        self.lock = threading.Lock()
        self._key = hashlib.sha256(f"sandbox-jwt/{config.seed}".encode()).digest()
        self.tokens: dict[str, tuple[str, float]] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults(**json.loads(json.dumps(self.initial_faults)))
            self.clock_ms = self.config.anchor_ms
            self.stats: Counter = Counter()
            self.by_path: Counter = Counter()
            self.data_requests = 0
            self.pages_served = 0
            self.windows: dict[str, deque] = defaultdict(deque)

    # --- KnowBe4 directory (built once) ---------------------------------------------------------
    def ksat(self) -> tuple[list[dict], dict]:
        if not hasattr(self, "_ksat"):
            self._ksat = ksat_directory(self.tenant.people)
        return self._ksat

    # --- OAuth ---------------------------------------------------------------------------------
    def check_client(self, client_id: str, secret: str) -> bool:
        return client_id in CLIENTS and hmac.compare_digest(secret, CLIENT_SECRET)

    def issue_token(self, client_id: str) -> tuple[str, int]:
        ttl = int(self.faults.token_ttl)
        now = time.time()
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps({"sub": client_id, "tenantUid": self.tenant.tenant_id, "iat": int(now),
                                   "exp": int(now + ttl), "jti": secrets.token_hex(8)}).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self.lock:
            self.tokens[token] = (client_id, now + ttl)
            self.stats["tokens_issued"] += 1
        return token, ttl

    def client_of(self, token: str) -> str | None:
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    # --- rate limit ----------------------------------------------------------------------------
    def over_rate_limit(self, client: str) -> float | None:
        """Seconds to wait if ``client`` is over the per-minute limit, else None (and count it)."""
        limit = self.faults.rate_limit_per_min
        if not limit:
            return None
        now = time.monotonic()
        with self.lock:
            window = self.windows[client]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limit:
                return max(window[0] + 60 - now, 0.0)
            window.append(now)
        return None
