"""SecurityTip channels over Airflow connections: a chat incoming webhook (providers-http HttpHook)
and email (providers-smtp SmtpHook). Each turns the channel's failures into ``DeliveryError``
(permanent or not) for the outbox, and never puts the webhook secret or a password in a message.
"""

from __future__ import annotations

import json
import smtplib

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.smtp.hooks.smtp import SmtpHook
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from securitycoach.coaching.campaigns import CampaignFile, EmailChannel, WebhookChannel
from securitycoach.coaching.outbox import DeliveryError, Sender, Tip


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and not exc.permanent


class ChatWebhookSender:
    """POST ``{"text": ...}`` to a Slack/Teams incoming webhook.

    Connection (type ``http``): host = the webhook's site (``https://hooks.slack.com``), password =
    the secret rest of its URL (``services/T.../B.../...``). 5xx, 429 and network errors are retried
    here ``attempts`` times with exponential backoff; 4xx is permanent at once.
    """

    def __init__(self, conn_id: str, *, attempts: int = 3, backoff: float = 0.5, timeout: float = 10.0) -> None:
        self.hook = HttpHook(method="POST", http_conn_id=conn_id)
        self.secret = self.hook.get_connection(conn_id).password or ""
        self.timeout = timeout
        self.post = retry(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=backoff, max=10),
                          retry=retry_if_exception(_transient), reraise=True)(self._post_once)

    def send(self, tip: Tip) -> None:
        self.post(tip)

    def _post_once(self, tip: Tip) -> None:
        try:
            response = self.hook.run(
                self.secret, data=json.dumps({"text": tip.body}),
                headers={"Content-Type": "application/json", "Idempotency-Key": tip.idempotency_key},
                extra_options={"check_response": False, "timeout": self.timeout},
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"webhook unreachable: {self._clean(exc)}", permanent=False) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(f"webhook answered HTTP {response.status_code}", permanent=False)
        if response.status_code >= 400:
            raise DeliveryError(f"webhook refused the tip: HTTP {response.status_code} "
                                f"{self._clean(response.text[:200])}", permanent=True)

    def _clean(self, value: object) -> str:
        text = f"{type(value).__name__}: {value}" if isinstance(value, Exception) else str(value)
        return text.replace(self.secret, "***") if self.secret else text


class EmailSender:
    """Send the tip as HTML mail with ``Message-ID`` and ``X-Idempotency-Key`` set from its key.

    Connection (type ``smtp``): host, port, login/password if the server wants them; extras
    ``disable_tls`` / ``disable_ssl`` for a plain local relay, ``retry_limit`` for reconnects.
    SMTP 5xx replies are permanent, 4xx and network errors transient.
    """

    def __init__(self, conn_id: str, from_email: str) -> None:
        self.conn_id = conn_id
        self.from_email = from_email

    def send(self, tip: Tip) -> None:
        headers = {"Message-ID": f"<{tip.idempotency_key}@securitycoach>", "X-Idempotency-Key": tip.idempotency_key}
        try:
            with SmtpHook(smtp_conn_id=self.conn_id) as hook:
                hook.send_email_smtp(to=tip.recipient, subject=tip.subject, html_content=tip.body,
                                     from_email=self.from_email, custom_headers=headers)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused recipient(s) {sorted(exc.recipients)}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP unreachable: {type(exc).__name__}: {exc}", permanent=False) from None


def senders_for(campaigns: CampaignFile) -> dict[str, Sender]:
    """One sender per enabled campaign that sends anything (test-mode campaigns need none)."""
    senders: dict[str, Sender] = {}
    for campaign in campaigns.enabled:
        channel = campaign.channel
        if campaign.test_mode:
            continue
        if isinstance(channel, WebhookChannel):
            senders[campaign.name] = ChatWebhookSender(channel.conn_id)
        elif isinstance(channel, EmailChannel):
            senders[campaign.name] = EmailSender(channel.conn_id, channel.from_email)
    return senders
