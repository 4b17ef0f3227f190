"""Run the sandbox as a child process (tests, the demo, benchmarks) and drive its admin API."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import requests

from incydr_sandbox.config import (
    CLIENT_SECRET,
    DEFAULT_CLIENT_ID,
    KSAT_API_KEY,
    KSAT_EVENTS_KEY,
    SLACK_BOT_TOKEN,
)


def console_script() -> list[str]:
    """The ``incydr-sandbox`` command of this environment (falls back to ``python -m incydr_sandbox``)."""
    script = Path(sys.executable).with_name("incydr-sandbox")
    return [str(script)] if script.exists() else [sys.executable, "-m", "incydr_sandbox"]


class SandboxProcess:
    """``with SandboxProcess(seed=42, anchor="2026-11-01T00:00:00Z") as sb: sb.base_url ...``

    Extra CLI flags go in ``extra_args`` or as keywords (``days=7, fail_429_every=3`` become
    ``--days 7 --fail-429-every 3``; a list value repeats, e.g. ``fail_next=[503, 503]``).
    """

    def __init__(self, *, seed: int = 42, anchor: str | None = None, extra_args: list[str] | None = None,
                 startup_timeout: float = 30.0, **flags) -> None:
        args = ["--host", "127.0.0.1", "--port", "0", "--seed", str(seed)]
        if anchor:
            args += ["--anchor", anchor]
        for name, value in flags.items():
            flag = f"--{name.replace('_', '-')}"
            if value is True:
                args.append(flag)
            elif isinstance(value, list | tuple):
                args += [flag, *map(str, value)]
            elif value is not False and value is not None:
                args += [flag, str(value)]
        self.args = [*console_script(), *args, *(extra_args or [])]
        self.startup_timeout = startup_timeout
        self.client_id = DEFAULT_CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.ksat_key = KSAT_API_KEY
        self.events_key = KSAT_EVENTS_KEY
        self.process: subprocess.Popen | None = None
        self.base_url = ""
        self.serving_line = ""
        self.health: dict = {}
        self._http = requests.Session()

    def __enter__(self) -> Self:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, env=env)
        line = self._first_line()
        if not line.startswith("serving "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"incydr-sandbox did not start (exit {self.process.returncode}): {line!r}")
        self.serving_line = line.rstrip("\n")
        self.base_url = line.split()[1]
        self.health = self.admin("GET", "health")
        return self

    def _first_line(self) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            if not sel.select(self.startup_timeout):
                return f"<nothing within {self.startup_timeout} s>"
        return self.process.stdout.readline()

    def __exit__(self, *exc) -> None:
        self._http.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stdout:
            self.process.stdout.close()

    # --- facts ----------------------------------------------------------------------------------
    @property
    def anchor(self) -> datetime:
        return datetime.fromtimestamp(self.health["anchor_ms"] / 1000, tz=UTC)

    @property
    def anchor_ms(self) -> int:
        return self.health["anchor_ms"]

    @property
    def tenant_id(self) -> str:
        return self.health["tenantId"]

    # --- admin API ------------------------------------------------------------------------------
    def admin(self, method: str, name: str, payload: dict | None = None) -> dict:
        response = self._http.request(method, f"{self.base_url}/_sandbox/{name}", json=payload, timeout=60)
        response.raise_for_status()
        return response.json()

    def set_faults(self, **knobs) -> dict:
        """Change fault knobs (names as in ``GET /_sandbox/faults``); returns them all."""
        return self.admin("POST", "faults", knobs)

    def faults(self) -> dict:
        return self.admin("GET", "faults")

    def warm(self) -> dict:
        """Plan every session begun by the clock (``POST /_sandbox/warm``): listings plan none after."""
        response = self._http.post(f"{self.base_url}/_sandbox/warm", timeout=900)  # ~0.1 ms a session
        response.raise_for_status()
        return response.json()

    def reset(self) -> dict:
        """Faults back to their start values, counters to zero, the clock back to the anchor."""
        return self.admin("POST", "reset")

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def advance(self, minutes: float) -> dict:
        """Move the sandbox clock forward (late alerts, state changes and new sessions appear)."""
        return self.admin("POST", "advance", {"minutes": minutes})

    def revoke_tokens(self) -> dict:
        """Invalidate every issued token (the next request with one gets a 401)."""
        return self.admin("POST", "revoke-tokens")

    def truth(self) -> dict:
        """Actor id -> {ksat_user_id, kind, reason, ...}: the right answer for user mapping."""
        return self.admin("GET", "truth")

    # --- delivery sinks ---------------------------------------------------------------------------
    @property
    def webhook_url(self) -> str:
        """A chat incoming-webhook URL on the sandbox (records what it receives)."""
        return f"{self.base_url}/sinks/webhook/{self.WEBHOOK_SECRET}"

    @property
    def smtp_port(self) -> int:
        return self.health["smtp_port"]

    WEBHOOK_SECRET = "services/T000/B000/sandbox-webhook-token"
    SLACK_BOT_TOKEN = SLACK_BOT_TOKEN

    @property
    def slack_base_url(self) -> str:
        """The Slack Web API emulation, as a ``slack`` connection's ``base_url`` extra."""
        return f"{self.base_url}/slack/api/"

    def airflow_connections(self, **code42_extra) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` values pointing the project's default connections at this sandbox:
        Code42, KnowBe4, the chat webhook sink, the SMTP sink and the Slack Web API (the warehouse is
        left alone)."""
        return {
            "AIRFLOW_CONN_CODE42_DEFAULT": json.dumps({
                "conn_type": "code42", "login": self.client_id, "password": self.client_secret,
                "host": self.base_url, "extra": {"rate_limit_per_minute": 6000, **code42_extra}}),
            "AIRFLOW_CONN_KNOWBE4_DEFAULT": json.dumps(
                {"conn_type": "knowbe4", "password": self.ksat_key, "host": self.base_url}),
            "AIRFLOW_CONN_KNOWBE4_EVENTS_DEFAULT": json.dumps(
                {"conn_type": "knowbe4_events", "password": self.events_key, "host": self.base_url,
                 "extra": {"retry_backoff": 0.05, "rate_limit_per_minute": 6000}}),
            # the webhook's secret part goes in the password, so Airflow masks it in logs
            "AIRFLOW_CONN_SECURITYCOACH_CHAT_WEBHOOK": json.dumps(
                {"conn_type": "http", "host": f"{self.base_url}/sinks/webhook", "password": self.WEBHOOK_SECRET}),
            # the bot token goes in the password (masked in logs); base_url points SlackHook here
            "AIRFLOW_CONN_SECURITYCOACH_SLACK": json.dumps(
                {"conn_type": "slack", "password": self.SLACK_BOT_TOKEN, "extra": {"base_url": self.slack_base_url}}),
            "AIRFLOW_CONN_SECURITYCOACH_SMTP": json.dumps(
                {"conn_type": "smtp", "host": "127.0.0.1", "port": self.smtp_port,
                 "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 1}}),
        }

    def sinks(self) -> dict:
        """``{"webhook": [...], "mail": [...], "slack": [...], "slack_calls": [...]}``: what the sinks
        received, oldest first (``slack``: the messages, each with its addressee's email and ids)."""
        return self.admin("GET", "sinks")

    def slack_workspace(self) -> dict:
        """``{"users": {email: {"id", "dm_channel"}}, "without_account": [email, ...]}``."""
        return self.admin("GET", "slack")

    def clear_sinks(self) -> dict:
        return self.admin("DELETE", "sinks")

    def user_events(self) -> dict:
        """The User Event API's state: ``event_types``, ``events``, ``deleted``, ``statuses``, ``calls``,
        ``quota``, ``used_today``, ``day`` (see routes/user_events.py)."""
        return self.admin("GET", "user-events")

    def webhook_fail_next(self, *statuses: int) -> dict:
        return self.admin("POST", "sinks/fail-next", {"statuses": list(statuses)})

    def wait_until_stopped(self, timeout: float = 10.0) -> int | None:
        deadline = time.monotonic() + timeout
        while self.process and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.process.returncode if self.process else None
