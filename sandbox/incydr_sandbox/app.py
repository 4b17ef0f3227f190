"""The sandbox's HTTP API: Code42 Incydr (DESIGN §4), KnowBe4 Reporting (§5), admin endpoints."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from incydr_sandbox.config import CLIENTS, KSAT_API_KEY
from incydr_sandbox.faults import inject
from incydr_sandbox.state import SandboxState
from incydr_sandbox.tenant import MAX_ALERT_DELAY_MS, severity_of

SESSION_PAGE_MAX = 50
ALERT_PAGE_MAX = 500
ACTOR_PAGE_MAX = 500
KSAT_PAGE_MAX = 500
REQUIRED_KEYS = {"sessions": "lastUpdated", "alerts": "createdAt", "actors": "actorId", "rules": "id"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def build_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="incydr-sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.middleware("http")
    async def _faults(request: Request, call_next):
        state.by_path[request.url.path if not request.url.path.startswith("/v1/sessions/") else
                      "/v1/sessions/{id}"] += 1
        return await inject(state, request, call_next)

    def page(kind: str, body: dict | list, items: list) -> Response:
        """A data page, with the malformed / missing-key faults applied to every Nth page."""
        f = state.faults
        with state.lock:
            state.pages_served += 1
            n = state.pages_served
        if f.malformed_every and n % f.malformed_every == 0:
            state.stats["malformed"] += 1
            text = json.dumps(body)
            return Response(text[: max(len(text) // 2, 1)], media_type="application/json")
        if f.missing_key_every and n % f.missing_key_every == 0 and items:
            state.stats["missing_key"] += 1
            items[0] = {k: v for k, v in items[0].items() if k != REQUIRED_KEYS[kind]}
        return JSONResponse(body)

    def bearer(request: Request) -> str:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        client = state.client_of(token) if token else None
        if client is None:
            raise ApiError(401, "missing, invalid or expired bearer token")
        return client

    def permission(name: str, label: str):
        def check(client: str = Depends(bearer)) -> str:
            if name not in CLIENTS[client]:
                raise ApiError(403, f"API client lacks the {label} permission")
            return client
        return check

    sessions_read = Depends(permission("alerts_sessions", "Alerts and Sessions read"))
    rules_read = Depends(permission("alert_rules", "Alert Rules read"))
    any_client = Depends(bearer)

    # --- OAuth ---------------------------------------------------------------------------------
    @app.post("/v1/oauth")
    async def oauth(request: Request):
        header = request.headers.get("authorization", "")
        try:
            client_id, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        if not header.startswith("Basic ") or not state.check_client(client_id, secret):
            raise ApiError(401, "invalid client credentials")
        token, ttl = state.issue_token(client_id)
        return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    # --- sessions ------------------------------------------------------------------------------
    @app.get("/v1/sessions", dependencies=[sessions_read])
    async def sessions(
        on_or_after: int | None = None, before: int | None = None, actor_id: str | None = None,
        has_alerts: str = "true", state_: Annotated[list[str] | None, Query(alias="state")] = None,
        severity: Annotated[list[int] | None, Query()] = None,
        rule_id: Annotated[list[str] | None, Query()] = None,
        watchlist_id: Annotated[list[str] | None, Query()] = None,
        risk_indicators: Annotated[list[str] | None, Query()] = None,
        content_inspection_status: str | None = None, type: str | None = None,
        order_by: str | None = None, sort_direction: str = "asc", page_number: int = 0, page_size: int = 50,
    ):
        if not 1 <= page_size <= SESSION_PAGE_MAX:
            raise ApiError(400, f"page_size must be between 1 and {SESSION_PAGE_MAX}")
        if page_number < 0:
            raise ApiError(400, "page_number is 0-based and must not be negative")
        if order_by not in (None, "end_time", "score") or sort_direction.lower() not in ("asc", "desc"):
            raise ApiError(400, "order_by must be end_time|score and sort_direction asc|desc")
        tenant, clock = state.tenant, state.clock_ms
        indices = tenant.index_range(on_or_after if on_or_after is not None else 0,
                                     before if before is not None else tenant.config.anchor_ms + 1)
        only_alerted = has_alerts.lower() == "true"
        filtered = any((only_alerted, actor_id, state_, severity, rule_id, watchlist_id, risk_indicators,
                        content_inspection_status, type, order_by))
        start = page_number * page_size
        if not filtered:  # fast path: index arithmetic, nothing scanned
            chosen = indices[start:start + page_size]
            items = [tenant.session(tenant.plan(i), clock) for i in chosen]
            return page("sessions", {"items": items, "totalCount": len(indices)}, items)
        matched = []
        for i in indices:
            plan = tenant.plan(i)
            s = tenant.session(plan, clock)
            if only_alerted and not s["triggeredAlerts"]:
                continue
            if actor_id and s["actorId"] != actor_id:
                continue
            if state_ and s["states"][-1]["state"] not in state_:
                continue
            if severity and severity_of(s["scores"][-1]["score"]) not in severity:
                continue
            if rule_id and not {a["ruleId"] for a in s["triggeredAlerts"]} & set(rule_id):
                continue
            if risk_indicators and not {r["id"] for r in s["riskIndicators"]} & set(risk_indicators):
                continue
            if watchlist_id and not (plan.person.departing and "wl-departing" in watchlist_id):
                continue
            if type and s["type"] != type:
                continue
            matched.append(s)
        if order_by:
            key = (lambda s: (s["endTime"], s["sessionId"])) if order_by == "end_time" else \
                (lambda s: (s["scores"][-1]["score"], s["sessionId"]))
            matched.sort(key=key, reverse=sort_direction.lower() == "desc")
        items = matched[start:start + page_size]
        return page("sessions", {"items": items, "totalCount": len(matched)}, items)

    def _plan_or_404(session_id: str):
        plan = state.tenant.find_session(session_id)
        if plan is None:
            raise ApiError(404, f"session {session_id} not found")
        return plan

    @app.get("/v1/sessions/{session_id}", dependencies=[sessions_read])
    async def session(session_id: str):
        return state.tenant.session(_plan_or_404(session_id), state.clock_ms)

    @app.get("/v1/sessions/{session_id}/events", dependencies=[sessions_read])
    async def session_events(session_id: str):
        events = state.tenant.file_events(_plan_or_404(session_id))
        return {"queryResult": {"fileEvents": events, "nextPgToken": "", "problems": None,
                                "totalCount": len(events)}}

    # --- alerts --------------------------------------------------------------------------------
    @app.post("/v1/alerts/query-alerts", dependencies=[sessions_read])
    async def query_alerts(request: Request):
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "body is not JSON") from None
        if body.get("tenantId") != state.tenant.tenant_id:
            raise ApiError(400, "tenantId does not match the authenticated tenant")
        size, number = int(body.get("pgSize", 100)), int(body.get("pgNum", 0))
        if not 1 <= size <= ALERT_PAGE_MAX or number < 0:
            raise ApiError(400, f"pgSize must be 1..{ALERT_PAGE_MAX} and pgNum >= 0 (0-based)")
        checks, after, before = _alert_filters(body)
        tenant, clock = state.tenant, state.clock_ms
        lo = after - MAX_ALERT_DELAY_MS if after is not None else None
        indices = tenant.index_range(lo if lo is not None else 0,
                                     before + 1 if before is not None else tenant.config.anchor_ms + 1)
        alerts = [a for i in indices for a in tenant.alerts(tenant.plan(i), clock) if all(c(a) for c in checks)]
        reverse = str(body.get("srtDirection", "asc")).lower() == "desc"
        alerts.sort(key=lambda a: (a["createdAt"], a["id"]), reverse=reverse)
        items = alerts[number * size:(number + 1) * size]
        return page("alerts", {"type$": "ALERT_QUERY_RESPONSE", "alerts": items, "totalCount": len(alerts),
                               "problems": []}, items)

    # --- alert rules ---------------------------------------------------------------------------
    @app.get("/v2/alert-rules", dependencies=[rules_read])
    async def alert_rules(PageNumber: int = 0, PageSize: int = 100):
        if PageNumber < 0 or not 1 <= PageSize <= 500:
            raise ApiError(400, "PageNumber is 0-based; PageSize must be 1..500")
        items = [dict(r) for r in state.tenant.alert_rules[PageNumber * PageSize:(PageNumber + 1) * PageSize]]
        return page("rules", items, items)

    @app.get("/v2/alert-rules/{rule_id}", dependencies=[rules_read])
    async def alert_rule(rule_id: str):
        for rule in state.tenant.alert_rules:
            if rule["id"] == rule_id:
                return rule
        raise ApiError(404, f"alert rule {rule_id} not found")

    # --- actors --------------------------------------------------------------------------------
    def _person(key: str, value: str):
        people_ = state.tenant.people
        found = next((p for p in people_ if getattr(p, key) == value), None)
        if found is None:
            raise ApiError(404, f"actor {value} not found")
        return found

    def _parent(person):
        return state.tenant.actors_by_id.get(person.parent_actor_id or "", person)

    def _family(person) -> dict:
        parent = _parent(person)
        children = [p.code42_actor() for p in state.tenant.people if p.parent_actor_id == parent.actor_id]
        return {"parent": parent.code42_actor(), "children": children}

    @app.get("/v1/actors/actor/id/{actor_id}", dependencies=[any_client])
    async def actor_by_id(actor_id: str):
        return _person("actor_id", actor_id).code42_actor()

    @app.get("/v1/actors/actor/id/{actor_id}/parent", dependencies=[any_client])
    async def actor_parent_by_id(actor_id: str):
        return _parent(_person("actor_id", actor_id)).code42_actor()

    @app.get("/v1/actors/actor/id/{actor_id}/family", dependencies=[any_client])
    async def actor_family_by_id(actor_id: str):
        return _family(_person("actor_id", actor_id))

    @app.get("/v1/actors/actor/name/{name}", dependencies=[any_client])
    async def actor_by_name(name: str):
        return _person("code42_name", name).code42_actor()

    @app.get("/v1/actors/actor/name/{name}/parent", dependencies=[any_client])
    async def actor_parent_by_name(name: str):
        return _parent(_person("code42_name", name)).code42_actor()

    @app.get("/v1/actors/actor/name/{name}/family", dependencies=[any_client])
    async def actor_family_by_name(name: str):
        return _family(_person("code42_name", name))

    @app.get("/v1/actors/actor/search", dependencies=[any_client])
    async def actor_search(page_: Annotated[int, Query(alias="page")] = 1, pageSize: int = 100,
                           nameStartsWith: str | None = None, nameEndsWith: str | None = None,
                           active: bool | None = None):
        if page_ < 1 or not 1 <= pageSize <= ACTOR_PAGE_MAX:
            raise ApiError(400, f"page is 1-based; pageSize must be 1..{ACTOR_PAGE_MAX}")
        actors = [p.code42_actor() for p in state.tenant.people
                  if (not nameStartsWith or p.code42_name.startswith(nameStartsWith))
                  and (not nameEndsWith or p.code42_name.endswith(nameEndsWith))]
        items = actors[(page_ - 1) * pageSize:page_ * pageSize]
        return page("actors", {"actors": items}, items)

    # --- KnowBe4 -------------------------------------------------------------------------------
    def ksat_key(request: Request) -> None:
        if request.headers.get("authorization", "") != f"Bearer {KSAT_API_KEY}":
            raise ApiError(401, "invalid KnowBe4 API key")

    @app.get("/v1/users", dependencies=[Depends(ksat_key)])
    async def ksat_users(status: str | None = None, page_: Annotated[int, Query(alias="page")] = 1,
                         per_page: int = 100):
        if page_ < 1 or not 1 <= per_page <= KSAT_PAGE_MAX:
            raise ApiError(400, f"page is 1-based; per_page must be 1..{KSAT_PAGE_MAX}")
        users = [u for u in state.ksat()[0] if status is None or u["status"] == status]
        return users[(page_ - 1) * per_page:page_ * per_page]

    @app.get("/v1/groups", dependencies=[Depends(ksat_key)])
    async def ksat_groups_():
        from incydr_sandbox.identities import ksat_groups
        return ksat_groups(state.ksat()[0])

    # --- admin ---------------------------------------------------------------------------------
    @app.get("/_sandbox/health")
    async def health():
        cfg = state.config
        return {"ok": True, "tenantId": state.tenant.tenant_id, "seed": cfg.seed, "anchor_ms": cfg.anchor_ms,
                "clock_ms": state.clock_ms, "days": cfg.days, "sessions": cfg.sessions, "actors": cfg.actors}

    @app.get("/_sandbox/faults")
    async def get_faults():
        return state.faults.as_dict()

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request):
        try:
            state.faults.update(await request.json())
        except (ValueError, TypeError) as exc:
            raise ApiError(400, str(exc)) from None
        return state.faults.as_dict()

    @app.get("/_sandbox/stats")
    async def stats():
        return {**state.stats, "data_requests": state.data_requests, "pages_served": state.pages_served,
                "by_path": dict(state.by_path)}

    @app.post("/_sandbox/reset")
    async def reset():
        state.reset()
        return {"ok": True}

    @app.post("/_sandbox/advance")
    async def advance(request: Request):
        minutes = float((await request.json()).get("minutes", 0))
        if minutes < 0:
            raise ApiError(400, "the clock only moves forward")
        state.clock_ms += int(minutes * 60_000)
        return {"clock_ms": state.clock_ms}

    @app.post("/_sandbox/revoke-tokens")
    async def revoke_tokens():
        with state.lock:
            revoked = len(state.tokens)
            state.tokens.clear()
        return {"revoked": revoked}

    @app.get("/_sandbox/truth")
    async def truth():
        return state.ksat()[1]

    return app


def _alert_filters(body: dict):
    """The query's filters as predicates, plus the CreatedAt bounds (epoch ms) for the scan."""
    checks, after, before = [], None, None
    fields = {"State": "state", "Severity": "severity", "ActorId": "actorId", "Actor": "actor",
              "RuleId": "ruleId", "AlertId": "id", "Name": "name", "Type": "type"}
    for group in body.get("groups") or []:
        for flt in group.get("filters") or []:
            term, op, value = flt.get("term"), flt.get("operator"), flt.get("value")
            if term == "CreatedAt":
                try:
                    t = int(datetime.fromisoformat(str(value)).timestamp() * 1000)
                except ValueError:
                    raise ApiError(400, f"CreatedAt value {value!r} is not ISO-8601") from None
                if op == "ON_OR_AFTER":
                    after = t if after is None else max(after, t)
                    checks.append(lambda a, t=t: _ms(a["createdAt"]) >= t)
                elif op == "ON_OR_BEFORE":
                    before = t if before is None else min(before, t)
                    checks.append(lambda a, t=t: _ms(a["createdAt"]) <= t)
                else:
                    raise ApiError(400, f"operator {op} is not supported on CreatedAt")
            elif term in fields:
                key = fields[term]
                if op == "IS":
                    checks.append(lambda a, k=key, v=value: a.get(k) == v)
                elif op == "IS_NOT":
                    checks.append(lambda a, k=key, v=value: a.get(k) != v)
                elif op == "CONTAINS":
                    checks.append(lambda a, k=key, v=value: str(v).lower() in str(a.get(k) or "").lower())
                else:
                    raise ApiError(400, f"operator {op} is not supported on {term}")
            else:
                raise ApiError(400, f"filter term {term!r} is not supported")
    return checks, after, before


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
