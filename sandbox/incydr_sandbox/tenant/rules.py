"""Alert rules in the shape of ``GET /v2/alert-rules`` (the SDK's ``RuleDetails``)."""

from __future__ import annotations

from incydr_sandbox.config import DAY_MS
from incydr_sandbox.rand import iso_ms, key64
from incydr_sandbox.tenant import catalog as c

_UPLOAD_CATEGORY = {"personal_cloud": "cloudStorage", "personal_email": "email", "git_push": "sourceCodeRepository",
                    "messaging": "messaging", "genai": "productivityTool"}


def _vectors(rule: c.RuleDef) -> dict:
    vectors: dict = {}
    order = 0
    for key in rule.vectors:
        if key == "removable_media":
            vectors["removableMedia"] = {"isEnabled": True, "criteriaOrder": order}
        elif key == "public_link":
            share = {"observeAll": False, "publicLinkShare": True, "directShare": False}
            vectors["cloudSharing"] = {"observeAll": False, "box": share, "googleDrive": share, "oneDrive": share,
                                       "criteriaOrder": order}
        elif key in _UPLOAD_CATEGORY:
            upload = vectors.setdefault("fileUpload", {"advancedSettings": {"observeUncategorized": False},
                                                       "criteriaOrder": order})
            upload[_UPLOAD_CATEGORY[key]] = {"observeAll": True, "destinations": []}
        else:  # AirDrop has no vector setting of its own in the rule model
            continue
        order += 1
    return vectors


def _filters(rule: c.RuleDef, watchlist_id) -> dict:
    low = rule.min_severity <= 1
    filters: dict = {"riskSeverity": {"low": low, "moderate": rule.min_severity <= 2, "high": True,
                                      "critical": True, "criteriaOrder": 0}}
    order = 1
    if rule.requires is c.SOURCE_CODE:
        filters["fileCategory"] = {"categories": ["SourceCode"], "criteriaOrder": order}
        order += 1
    if rule.requires is c.FILE_MISMATCH:
        filters["fileTypeMismatch"] = {"isEnabled": True, "criteriaOrder": order}
        order += 1
    if rule.watchlist:
        filters["watchlist"] = {"watchlists": [{"id": watchlist_id(rule.watchlist)}], "criteriaOrder": order}
        order += 1
    if rule.requires is not None:
        filters["riskIndicator"] = {"categories": [], "indicators": [rule.requires.name], "criteriaOrder": order}
    return filters


def render_rules(seed: int, span_start_ms: int, rule_id, lesson_id, watchlist_id) -> list[dict]:
    out = []
    for k, rule in enumerate(c.RULES):
        created = span_start_ms - (400 - k * 37) * DAY_MS - key64(seed, "rule-created", rule.key) % DAY_MS
        modified = created + (k * 11 + 3) * DAY_MS
        author = "Code42" if rule.system else "secops-admin@example.com"
        notify = rule.severity == "HIGH"
        out.append({
            "id": rule_id(rule),
            "name": rule.name,
            "description": rule.description,
            "severity": rule.severity,
            "isEnabled": rule.enabled,
            "source": "Alerting",
            "notifications": {"isEnabled": notify, "contacts": [
                {"isEnabled": notify, "type": "EMAIL", "address": "soc@example.com"}]},
            "education": {"lessonId": lesson_id(rule), "messagingMethod": rule.messaging},
            "vectors": _vectors(rule),
            "filters": _filters(rule, watchlist_id),
            "createdAt": iso_ms(created),
            "createdBy": author,
            "modifiedAt": iso_ms(modified),
            "modifiedBy": "secops-admin@example.com",
            "isSystemRule": rule.system,
        })
    return out
