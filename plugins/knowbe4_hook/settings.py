"""The extras of a ``knowbe4_events`` connection beyond the transport's (``apiclient.settings``),
declared once for validation and for the connection form. Airflow-free: provider discovery imports it."""

from __future__ import annotations

from dataclasses import dataclass

from apiclient.settings import ExtraSettings, setting


@dataclass(frozen=True)
class EventsSettings(ExtraSettings):
    """The User Event API's own settings: its daily quota is 10 calls per seat per key."""

    seats: int | None = setting(
        None, "Seats", "The account's seats, which size the daily quota (10 calls per seat); empty: ask the "
        "Reporting API (the knowbe4 connection) for the account's number_of_seats.", minimum=1)
    max_retry_wait: float = setting(
        60.0, "Longest Retry-After wait (s)", "A 429 whose Retry-After is longer than this stops the run "
        "at once (the quota is used up until tomorrow) instead of sleeping.", minimum=0)
