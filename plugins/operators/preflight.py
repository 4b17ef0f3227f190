"""The sync run's first step: are the Airflow connections its tenant and campaigns need defined?"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from operators.coaching import campaign_file
from securitycoach.connections import check_connections, needed_connections, tips_may_be_due
from securitycoach.tenants import Tenant


def connection_exists(conn_id: str) -> bool:
    """Airflow's own lookup: secrets backends, ``AIRFLOW_CONN_*`` variables, then the metadata DB."""
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


class CheckConnectionsOperator(BaseOperator):
    """Fail the run before it extracts anything, without retries, when a connection it needs is not
    defined: one line per connection, naming the tenant entry or campaign that needs it.

    Channel connections (Slack, SMTP, the team digest's webhook) are needed only by a run whose
    data interval is within the campaign file's ``freshness_hours``: an older run (a backfill)
    plans only stale tips and sends none. A missing optional connection is logged with what the
    run does without it.
    """

    ui_color = "#fff3cd"

    def __init__(self, *, tenant: Tenant, rules_path: str | None = None, campaigns_path: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.tenant = tenant
        self.rules_path = rules_path
        self.campaigns_file = campaigns_path

    def execute(self, context) -> dict[str, Any]:
        campaigns = campaign_file(self.campaigns_file, self.rules_path)
        sending = tips_may_be_due(context.get("data_interval_end"), datetime.now(UTC), campaigns)
        result = check_connections(needed_connections(self.tenant, campaigns), connection_exists, sending=sending)
        for line in result.absent_ok:
            self.log.warning("%s", line)
        if result.missing:
            raise AirflowFailException(result.message)
        self.log.info("connections defined: %s", ", ".join(result.found))
        return {"found": result.found, "absent_ok": result.absent_ok, "tips_may_be_due": sending}
