"""The sandbox's Slack workspace: who has an account, their ids, their direct conversations.

Every KSAT user of the directory has a Slack account with the same email, except about one in
ten (chosen by a hash of seed and email, so the same people on every run): for them
``users.lookupByEmail`` answers ``users_not_found``. Ids look like Slack's (``U...`` users,
``D...`` direct conversations) and are stable per seed and email.
"""

from __future__ import annotations

from dataclasses import dataclass

from incydr_sandbox.identities import Directory
from incydr_sandbox.rand import key64

NO_ACCOUNT_EVERY = 10
TEAM_ID = "T0SANDBOX"
BOT_USER_ID = "U0SECCOACH"


def _id(prefix: str, seed: int, email: str) -> str:
    return f"{prefix}{key64(seed, 'slack', prefix, email):016X}"[:11]


@dataclass(frozen=True)
class SlackUser:
    id: str
    email: str
    real_name: str
    dm_channel: str

    def api(self) -> dict:
        return {"id": self.id, "team_id": TEAM_ID, "name": self.email.split("@", 1)[0], "real_name": self.real_name,
                "deleted": False, "is_bot": False, "profile": {"email": self.email, "real_name": self.real_name}}


class SlackWorkspace:
    def __init__(self, directory: Directory, seed: int) -> None:
        self.by_email: dict[str, SlackUser] = {}
        self.without_account: list[str] = []  # KSAT emails that have no Slack account
        for user in directory.ksat_users:
            key = user.email.lower()
            if key in self.by_email or key in {e.lower() for e in self.without_account}:
                continue
            if key64(seed, "slack-account", key) % NO_ACCOUNT_EVERY == 0:
                self.without_account.append(user.email)
                continue
            self.by_email[key] = SlackUser(_id("U", seed, key), user.email, f"{user.first} {user.last}".strip(),
                                           _id("D", seed, key))
        self.by_id = {u.id: u for u in self.by_email.values()}
        self.by_channel = {u.dm_channel: u for u in self.by_email.values()}

    def lookup(self, email: str) -> SlackUser | None:
        return self.by_email.get(email.strip().lower())

    def as_dict(self) -> dict:
        return {"users": {u.email: {"id": u.id, "dm_channel": u.dm_channel} for u in self.by_email.values()},
                "without_account": list(self.without_account)}
