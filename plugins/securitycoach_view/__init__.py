"""The SecurityCoach view inside Airflow's UI: an Airflow 3 plugin (``fastapi_apps`` + an
``external_views`` nav entry) whose FastAPI app, mounted by the api-server under ``/securitycoach``,
serves the pages of ``securitycoach.console`` from the warehouse connection.

Every page is behind Airflow's own authentication: the caller's JWT (the UI's session cookie or a
bearer token) is resolved by the api-server's ``get_user`` and must pass the auth manager's
``is_authorized_custom_view`` for the view ``SecurityCoach``. Nobody anonymous gets a page: a browser
is sent to Airflow's login, any other client gets 401. The view only reads; it never migrates the
warehouse (a warehouse behind this code's schema is a named 503).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from securitycoach_view.app import RESOURCE, URL_PREFIX, app


class SecurityCoachViewPlugin(AirflowPlugin):
    name = "securitycoach_view"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": RESOURCE}]  # noqa: RUF012 - Airflow's API
    external_views = [  # noqa: RUF012 - Airflow's API
        {"name": RESOURCE, "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "securitycoach"},
    ]
