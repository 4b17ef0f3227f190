"""Delivery sinks: where the coaching pipeline's SecurityTips land when run against the sandbox.

- a chat incoming-webhook sink (``POST /sinks/webhook/{path}``, Slack/Teams-shaped JSON), and
- an SMTP sink (aiosmtpd on a loopback port) that accepts any mail, and
- the Slack Web API emulation (``/slack/api/*``, routes/slack.py): every ``chat.postMessage`` with
  its addressee (the person whose direct conversation it went to), and every API call's outcome.

All record what arrived (headers that matter, body) for tests and the demo to read back through
``GET /_sandbox/sinks``. The webhook sink can be told to answer the next requests with given
status codes (``POST /_sandbox/sinks/fail-next``) to exercise retries and permanent errors.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Sinks:
    webhook: list[dict] = field(default_factory=list)
    mail: list[dict] = field(default_factory=list)
    slack: list[dict] = field(default_factory=list)  # messages posted: channel, user_id, email, text
    slack_calls: list[dict] = field(default_factory=list)  # every Slack API call: method, error (or None)
    code42_notes: list[dict] = field(default_factory=list)  # notes added to sessions: session_id, note
    webhook_fail_next: list[int] = field(default_factory=list)
    smtp_port: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    # --- webhook ---------------------------------------------------------------------------------
    def next_webhook_status(self) -> int:
        with self.lock:
            return self.webhook_fail_next.pop(0) if self.webhook_fail_next else 200

    def record_webhook(self, entry: dict) -> None:
        with self.lock:
            self.webhook.append(entry)

    # --- Slack ---------------------------------------------------------------------------------------
    def record_slack_call(self, method: str, error: str | None) -> None:
        with self.lock:
            self.slack_calls.append({"received_at": time.time(), "method": method, "error": error})

    def record_slack_message(self, entry: dict) -> None:
        with self.lock:
            self.slack.append(entry)

    # --- Code42 session notes ------------------------------------------------------------------------
    def record_note(self, entry: dict) -> None:
        with self.lock:
            self.code42_notes.append(entry)

    def notes_of(self, session_id: str) -> list[dict]:
        with self.lock:
            return [n["note"] for n in self.code42_notes if n["session_id"] == session_id]

    # --- SMTP ------------------------------------------------------------------------------------
    def start_smtp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve SMTP (once per sandbox) on ``port``, or a free one for 0; returns the port."""
        if self._controller is None:
            port = port or _free_port(host)
            self._controller = Controller(_MailHandler(self), hostname=host, port=port)
            self._controller.start()
            self.smtp_port = port
        return self.smtp_port

    def stop_smtp(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def as_dict(self) -> dict:
        with self.lock:
            return {"webhook": list(self.webhook), "mail": list(self.mail), "slack": list(self.slack),
                    "slack_calls": list(self.slack_calls), "code42_notes": list(self.code42_notes),
                    "smtp_port": self.smtp_port,
                    "webhook_fail_next": list(self.webhook_fail_next)}

    def clear(self) -> None:
        with self.lock:
            self.webhook.clear()
            self.mail.clear()
            self.slack.clear()
            self.slack_calls.clear()
            self.code42_notes.clear()
            self.webhook_fail_next.clear()


class _MailHandler:
    def __init__(self, sinks: Sinks) -> None:
        self.sinks = sinks

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("html", "plain"))
        with self.sinks.lock:
            self.sinks.mail.append({
                "received_at": time.time(), "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "subject": message["Subject"], "message_id": message["Message-ID"],
                "idempotency_key": message["X-Idempotency-Key"],
                "body": body.get_content() if body is not None else "",
            })
        return "250 Message accepted for delivery"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
