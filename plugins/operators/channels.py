"""SecurityTip channels over Airflow connections: a Slack direct message (providers-slack SlackHook),
email (providers-smtp SmtpHook), and the shared chat incoming webhook (providers-http HttpHook) that
carries only the team digest. Each turns the channel's failures into ``DeliveryError`` for the
outbox, and never puts the webhook secret, a token or a password in a message.
"""

from __future__ import annotations

import json
import smtplib

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.slack.hooks.slack import SlackHook
from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.sdk.exceptions import AirflowNotFoundException
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from securitycoach.coaching.campaigns import CampaignFile, EmailChannel, SlackDMChannel
from securitycoach.coaching.outbox import NO_CHAT_ACCOUNT, DeliveryError, Sender, Tip


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and not exc.permanent


class ChatWebhookSender:
    """POST ``{"text": ...}`` to a Slack/Teams incoming webhook: a shared channel, so only the team
    digest goes this way (campaigns refuse it at validation).

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
        self.defined = False  # the connection was found (once per sender, i.e. per run)

    def send(self, tip: Tip) -> None:
        headers = {"Message-ID": f"<{tip.idempotency_key}@securitycoach>", "X-Idempotency-Key": tip.idempotency_key}
        if not self.defined:  # looked up only now, when a tip is due; SmtpHook would say only "not found"
            try:
                SmtpHook.get_connection(self.conn_id)
            except AirflowNotFoundException:
                raise DeliveryError(f"SMTP connection {self.conn_id!r} is not defined", permanent=True,
                                    channel_down=True) from None
            self.defined = True
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


# Slack errors that mean the bot token itself is refused: no tip can go until the connection is fixed.
SLACK_AUTH_ERRORS = frozenset({"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
                               "no_permission", "missing_scope", "not_allowed_token_type", "ekm_access_denied"})


class SlackDMSender:
    """Send the tip as a Slack direct message to the person with the tip's (KSAT) email.

    Connection (type ``slack``): password = the bot token (``xoxb-...``; scopes users:read.email,
    im:write, chat:write); extra ``base_url`` for another API root, ``timeout``. Per run (one sender
    per task) it caches email -> Slack user (``users.lookupByEmail``) and user -> direct
    conversation (``conversations.open``), then ``chat.postMessage`` to that conversation only.
    HTTP 429 is retried by slack_sdk's ``RateLimitErrorRetryHandler`` after the Retry-After it
    gives (``rate_limit_retries`` times, then the tip waits for a later try). ``users_not_found``
    is the person's final outcome ``no_chat_account``; a refused token (``invalid_auth``...) stops
    the campaign for this run with one line naming the connection.
    """

    def __init__(self, conn_id: str, *, rate_limit_retries: int = 3, timeout: int = 10) -> None:
        self.conn_id = conn_id
        self.hook = SlackHook(slack_conn_id=conn_id, timeout=timeout, retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)])
        self.users: dict[str, str | None] = {}  # lower-cased email -> Slack user id (None: no account)
        self.channels: dict[str, str] = {}  # Slack user id -> direct conversation id

    def send(self, tip: Tip) -> None:
        user = self.user_id(tip.recipient)
        if user is None:
            raise DeliveryError("no Slack account for this KSAT email (users.lookupByEmail: users_not_found)",
                                permanent=True, outcome=NO_CHAT_ACCOUNT)
        if user not in self.channels:
            opened = self._call("conversations.open", users=user)
            self.channels[user] = opened["channel"]["id"]
        # Slack has no idempotency header: the key travels as the message's metadata
        self._call("chat.postMessage", channel=self.channels[user], text=tip.body, unfurl_links=False,
                   unfurl_media=False, metadata={"event_type": "securitytip",
                                                 "event_payload": {"idempotency_key": tip.idempotency_key}})

    def user_id(self, email: str) -> str | None:
        key = email.strip().lower()
        if key not in self.users:
            try:
                found = self._call("users.lookupByEmail", http_verb="GET", params={"email": email})
                self.users[key] = found["user"]["id"]
            except _NotFound:
                self.users[key] = None
        return self.users[key]

    def _call(self, method: str, *, http_verb: str = "POST", params: dict | None = None, **arguments):
        try:
            if params is not None:
                return self.hook.call(method, http_verb=http_verb, params=params)
            return self.hook.call(method, json=arguments)
        except SlackApiError as exc:
            raise self._error(method, exc) from None
        except AirflowNotFoundException:
            raise DeliveryError(f"Slack connection {self.conn_id!r} is missing or has no bot token (password)",
                                permanent=True, channel_down=True) from None
        except OSError as exc:  # urllib's URLError and socket errors, after slack_sdk's own retries
            raise DeliveryError(f"Slack unreachable ({method}): {type(exc).__name__}", permanent=False) from None

    def _error(self, method: str, exc: SlackApiError) -> Exception:
        response = exc.response
        error = str(response.get("error") or "") if isinstance(response.data, dict) else ""
        if response.status_code == 429:
            return DeliveryError(f"Slack {method}: still rate limited (HTTP 429) after the retries; tried again "
                                 f"later", permanent=False)
        if method == "users.lookupByEmail" and error == "users_not_found":
            return _NotFound()
        if error in SLACK_AUTH_ERRORS:
            needed = response.get("needed") if error == "missing_scope" else None
            return DeliveryError(f"Slack connection {self.conn_id!r} refused the bot token ({error}"
                                 + (f", needs scope {needed}" if needed else "")
                                 + "): set a valid bot token with scopes users:read.email, im:write, chat:write "
                                   "as the connection's password", permanent=True, channel_down=True)
        if response.status_code >= 500:
            return DeliveryError(f"Slack {method}: HTTP {response.status_code}", permanent=False)
        return DeliveryError(f"Slack {method} refused the tip: {error or f'HTTP {response.status_code}'}",
                             permanent=True)


class _NotFound(Exception):
    pass


def senders_for(campaigns: CampaignFile) -> dict[str, Sender]:
    """One sender per enabled campaign that sends anything (test-mode campaigns need none); Slack
    campaigns on the same connection share one sender, so its user look-ups are cached per run."""
    senders: dict[str, Sender] = {}
    slack: dict[str, SlackDMSender] = {}
    for campaign in campaigns.enabled:
        channel = campaign.channel
        if campaign.test_mode:
            continue
        if isinstance(channel, SlackDMChannel):
            if channel.conn_id not in slack:
                slack[channel.conn_id] = SlackDMSender(channel.conn_id)
            senders[campaign.name] = slack[channel.conn_id]
        elif isinstance(channel, EmailChannel):
            senders[campaign.name] = EmailSender(channel.conn_id, channel.from_email)
    return senders
