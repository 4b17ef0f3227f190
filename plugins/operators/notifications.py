"""Failure callbacks of the sync DAGs: one clear paragraph per failed task, in the log and, when
the connection ``securitycoach_ops_webhook`` exists, posted to that chat webhook.

The paragraph names the DAG, task, data interval, tenant, try number and the exception's first
line, with registered secrets masked and anything shaped like a JWT cut out. The callback never
raises: a broken webhook is logged, the task's own failure stays what it was.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from airflow.sdk import BaseNotifier
from airflow.sdk._shared.secrets_masker import redact  # the masker behind Airflow's task logs
from airflow.sdk.exceptions import AirflowNotFoundException

log = logging.getLogger(__name__)

OPS_WEBHOOK_CONN_ID = "securitycoach_ops_webhook"
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+(?:\.[\w-]*)?")
_MAX_LINE = 300


def _redact(text: str) -> str:
    """Mask the secrets Airflow knows of (connection passwords, sensitive extras) and JWTs."""
    return _JWT.sub("<token>", str(redact(text)))


def first_line(exc: BaseException | str | None) -> str:
    if exc is None:
        return "no exception recorded"
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, BaseException):
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    line = _redact(line)
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def failure_summary(context: dict[str, Any], *, tenant: str, code42_conn_id: str) -> str:
    """The paragraph: ``Task D.T failed (try 2 of 3) for tenant acme (connection c) ...``."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    try_number = getattr(ti, "try_number", None)
    max_tries = getattr(ti, "max_tries", None)
    tries = f"try {try_number} of {max_tries + 1}" if isinstance(max_tries, int) and try_number else \
        f"try {try_number or '?'}"
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    interval = f"{start.isoformat()} to {end.isoformat()}" if start and end else "no data interval"
    return (f"Task {dag_id}.{task_id} failed ({tries}) for tenant {tenant} (Code42 connection "
            f"{code42_conn_id}), data interval {interval}, run {context.get('run_id', '?')}: "
            f"{first_line(context.get('exception'))}")


class FailureSummaryNotifier(BaseNotifier):
    """``on_failure_callback`` of the tenant DAGs' tasks."""

    def __init__(self, *, tenant: str, code42_conn_id: str, webhook_conn_id: str = OPS_WEBHOOK_CONN_ID) -> None:
        super().__init__()
        self.tenant = tenant
        self.code42_conn_id = code42_conn_id
        self.webhook_conn_id = webhook_conn_id

    def notify(self, context) -> None:
        summary = failure_summary(context, tenant=self.tenant, code42_conn_id=self.code42_conn_id)
        log.error("%s", summary)
        self.post(summary, context)

    def post(self, summary: str, context) -> bool:
        from operators.channels import ChatWebhookSender
        from securitycoach.coaching.outbox import DeliveryError, Tip

        try:
            sender = ChatWebhookSender(self.webhook_conn_id, attempts=2, backoff=0.2)
        except AirflowNotFoundException:
            return False  # no ops webhook configured: the log line is the notification
        ti = context.get("ti")
        key = hashlib.sha256(f"{getattr(ti, 'dag_id', '')}|{getattr(ti, 'task_id', '')}|{context.get('run_id')}|"
                             f"{getattr(ti, 'try_number', '')}".encode()).hexdigest()[:32]
        try:
            sender.send(Tip(campaign="operations", recipient=self.webhook_conn_id, subject="task failed",
                            body=summary, idempotency_key=f"failure-{key}"))
        except DeliveryError as exc:
            log.warning("could not post the failure summary to %s: %s", self.webhook_conn_id, exc)
            return False
        log.info("posted the failure summary to %s", self.webhook_conn_id)
        return True
