"""Run the sandbox as a child process (tests, the demo, benchmarks) and talk to its admin API."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Self

import requests

from incydr_sandbox.config import CLIENT_SECRET, KSAT_API_KEY


class SandboxProcess:
    """``with SandboxProcess(seed=42, anchor="2026-11-01T00:00:00Z") as sb: sb.base_url ...``"""

    def __init__(self, *, seed: int = 42, anchor: str | None = None, extra_args: list[str] | None = None,
                 startup_timeout: float = 30.0) -> None:
        self.args = [sys.executable, "-m", "incydr_sandbox.cli", "--host", "127.0.0.1", "--port", "0",
                     "--seed", str(seed), *(["--anchor", anchor] if anchor else []), *(extra_args or [])]
        self.startup_timeout = startup_timeout
        self.client_id = "sandbox-client"
        self.client_secret = CLIENT_SECRET
        self.ksat_key = KSAT_API_KEY
        self.process: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # the one "serving ..." line (or EOF if it died)
        if not line.startswith("serving "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"incydr-sandbox did not start (exit {self.process.returncode}): {line!r}")
        self.base_url = line.split()[1]
        self.health = self.admin("GET", "health")
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def anchor(self) -> datetime:
        return datetime.fromtimestamp(self.health["anchor_ms"] / 1000, tz=UTC)

    @property
    def tenant_id(self) -> str:
        return self.health["tenantId"]

    def admin(self, method: str, name: str, payload: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base_url}/_sandbox/{name}", json=payload, timeout=30)
        response.raise_for_status()
        return response.json()

    def set_faults(self, **knobs) -> dict:
        return self.admin("POST", "faults", knobs)

    def reset(self) -> dict:
        return self.admin("POST", "reset")

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def advance(self, minutes: float) -> dict:
        return self.admin("POST", "advance", {"minutes": minutes})

    def revoke_tokens(self) -> dict:
        """Invalidate every issued token (the next request with one gets a 401)."""
        return self.admin("POST", "revoke-tokens")
