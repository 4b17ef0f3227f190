"""Disabling a deleted tenant in Airflow: pause its DAGs, remove its connections.

Two ways, chosen by ``airflow_control()``:

- ``RestApiControl``: Airflow's REST API (``PATCH /api/v2/dags/{id}``, ``DELETE /api/v2/connections/{id}``)
  through the connection ``securitycoach_airflow_api`` (type ``http``: host = the api-server's URL,
  login/password = a user allowed to edit DAGs and connections; a token comes from ``/auth/token``).
  The way for tasks on Airflow 3 workers, which have no metadata-database access.
- ``MetadataDbControl``: Airflow's ORM on the metadata database, for places that have it (the
  ``securitycoach`` CLI on an Airflow host, ``dag.test()``). On a worker it fails, and the failure
  is recorded.

A connection that lives outside the metadata database (an ``AIRFLOW_CONN_*`` variable, a secrets
backend) cannot be removed from here: that is recorded as ``not_found`` with where it is.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import requests

from securitycoach.tenancy import Action, AirflowControl

AIRFLOW_API_CONN_ID = "securitycoach_airflow_api"


def _elsewhere(conn_id: str) -> str:
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    if var in os.environ:
        return f"defined by the environment variable {var}, not in the metadata DB: remove it there"
    return "not in the metadata DB (a secrets backend?): remove it where it is defined"


class MetadataDbControl:
    def pause_dag(self, dag_id: str) -> Action:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            model = session.get(DagModel, dag_id)
            if model is None:
                return Action("pause_dag", dag_id, "not_found", "no such DAG in the metadata DB")
            if model.is_paused:
                return Action("pause_dag", dag_id, "done", "was already paused")
            model.is_paused = True
        return Action("pause_dag", dag_id, "done", "paused (metadata DB)")

    def delete_connection(self, conn_id: str) -> Action:
        import sqlalchemy as sa
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            found = session.scalars(sa.select(Connection).where(Connection.conn_id == conn_id)).all()
            for conn in found:
                session.delete(conn)
        if not found:
            return Action("delete_connection", conn_id, "not_found", _elsewhere(conn_id))
        return Action("delete_connection", conn_id, "done", "deleted (metadata DB)")


class RestApiControl:
    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()

    @classmethod
    def from_connection(cls, conn) -> RestApiControl:
        host = conn.host or ""
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
        return cls(host, conn.login or "", conn.password or "")

    def _authorize(self) -> None:
        if "Authorization" in self.session.headers:
            return
        response = self.session.post(f"{self.base_url}/auth/token", timeout=self.timeout,
                                     json={"username": self.username, "password": self.password})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"Airflow API {self.base_url}/auth/token answered HTTP {response.status_code}")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def pause_dag(self, dag_id: str) -> Action:
        self._authorize()
        response = self.session.patch(f"{self.base_url}/api/v2/dags/{quote(dag_id, safe='')}",
                                      params={"update_mask": "is_paused"}, json={"is_paused": True},
                                      timeout=self.timeout)
        if response.status_code == 404:
            return Action("pause_dag", dag_id, "not_found", "the Airflow API knows no such DAG")
        if response.status_code != 200:
            return Action("pause_dag", dag_id, "failed", f"Airflow API answered HTTP {response.status_code}")
        return Action("pause_dag", dag_id, "done", "paused (Airflow API)")

    def delete_connection(self, conn_id: str) -> Action:
        self._authorize()
        response = self.session.delete(f"{self.base_url}/api/v2/connections/{quote(conn_id, safe='')}",
                                       timeout=self.timeout)
        if response.status_code == 404:
            return Action("delete_connection", conn_id, "not_found", _elsewhere(conn_id))
        if response.status_code not in (200, 204):
            return Action("delete_connection", conn_id, "failed", f"Airflow API answered HTTP {response.status_code}")
        return Action("delete_connection", conn_id, "done", "deleted (Airflow API)")


def airflow_control() -> AirflowControl:
    """The REST API when ``securitycoach_airflow_api`` is defined, else the metadata DB."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(AIRFLOW_API_CONN_ID)
    except AirflowNotFoundException:
        return MetadataDbControl()
    return RestApiControl.from_connection(conn)
