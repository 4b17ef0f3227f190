"""Detection rules against the sandbox's data: each rule fires where it should and nowhere else.

Expected sets are computed here from the raw API payloads the warehouse kept (``raw`` columns), by
reading the risk indicators and scores directly, independently of the detection engine.
"""

from __future__ import annotations

import copy
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from pipeline import default_catalog, load_reference, run_detection, sync_interval, use_sandbox

from securitycoach.detection.catalog import CatalogError, load_catalog
from securitycoach.paths import detection_rules_path
from securitycoach.streams import STREAMS
from securitycoach.warehouse import create_warehouse_engine, migrate
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

DAYS = 3


def _load(engine, sandbox, monkeypatch):
    code42, knowbe4 = use_sandbox(monkeypatch, sandbox)
    end = sandbox.anchor.replace(minute=0, second=0, microsecond=0)
    sync_interval(engine, code42, end, hours=24 * DAYS, lookback=timedelta(0))
    return load_reference(engine, code42, knowbe4)


@pytest.fixture(scope="module")
def loaded(sandbox, tmp_path_factory):
    """Three days of the sandbox tenant, mapped and run through the default detection rules."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path_factory.mktemp('detect') / 'wh.db'}")
    migrate(engine)
    sandbox.reset()
    with pytest.MonkeyPatch.context() as mp:
        tenant = _load(engine, sandbox, mp)
        result = run_detection(engine, tenant)
    yield engine, tenant, result
    engine.dispose()


def _severity(raw: dict) -> int:
    scores = raw.get("scores") or []
    return max(scores, key=lambda s: s["sourceTimestamp"])["severity"] if scores else 0


def _sessions(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.code42_session.c.session_id, t.code42_session.c.raw)).all())


def _detected(engine, rule_key: str) -> set[str]:
    d = t.detection.c
    with engine.connect() as conn:
        return set(conn.execute(sa.select(d.subject_id).where(d.rule_key == rule_key)).scalars())


def _names(raw: dict) -> set[str]:
    return {i["name"] for i in raw.get("riskIndicators") or []}


# What each system rule means, written straight against the API payload.
SYSTEM_RULES = {
    "removable-media": lambda r: "Removable media" in _names(r) and _severity(r) >= 1,
    "personal-cloud-upload": lambda r: bool(_names(r) & {"Personal cloud storage", "Personal webmail",
                                                         "Messaging app upload", "Generative AI tool"})
    and _severity(r) >= 1,
    "public-cloud-share": lambda r: "Public link share" in _names(r),
    "source-code-exfiltration": lambda r: "Source code" in _names(r) and _severity(r) >= 1,
    "departing-employee-exfiltration": lambda r: "Departing employee" in _names(r) and _severity(r) >= 1,
    "high-risk-session": lambda r: _severity(r) == 3,
    "critical-risk-session": lambda r: _severity(r) == 4,
}


@pytest.mark.parametrize("rule_key", sorted(SYSTEM_RULES))
def test_each_system_rule_fires_on_the_sessions_that_should_trigger_it_and_no_other(loaded, rule_key):
    engine, _, _ = loaded
    sessions = _sessions(engine)
    expected = {sid for sid, raw in sessions.items() if SYSTEM_RULES[rule_key](raw)}
    assert expected, f"the sandbox data has no session for {rule_key}: the test would prove nothing"
    assert len(expected) < len(sessions), f"{rule_key} would fire on every session"
    assert _detected(engine, rule_key) == expected


def test_system_rules_are_named_for_code42_and_on_by_default(loaded):
    engine, _tenant, _ = loaded
    r = t.detection_rule.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.rule_key, r.name, r.enabled).where(r.kind == "system")).all()
    assert {row.rule_key for row in rows} == set(SYSTEM_RULES)
    assert all(row.name.endswith(" Detected by Code42") and row.enabled for row in rows)


def test_every_code42_alert_rule_becomes_a_detection_rule_that_mirrors_it(loaded):
    engine, _, _ = loaded
    with engine.connect() as conn:
        code42 = {row.rule_id: row for row in conn.execute(sa.select(t.code42_alert_rule))}
        alerts = conn.execute(sa.select(t.code42_alert.c.alert_id, t.code42_alert.c.rule_id)).all()
        derived = {row.code42_rule_id: row for row in conn.execute(
            sa.select(t.detection_rule).where(t.detection_rule.c.kind == "alert_rule"))}
    assert set(derived) == set(code42)
    assert any(not rule.is_enabled for rule in code42.values())  # the sandbox has a disabled pilot rule
    for rule_id, rule in code42.items():
        assert derived[rule_id].name == f"{rule.name} Detected by Code42"
        assert derived[rule_id].enabled == rule.is_enabled
        expected = {a.alert_id for a in alerts if a.rule_id == rule_id} if rule.is_enabled else set()
        assert _detected(engine, f"code42-alert-rule:{rule_id}") == expected


def test_detections_are_recorded_for_unmapped_actors_too(loaded):
    engine, _, _ = loaded
    d, m = t.detection.c, t.user_mapping.c
    with engine.connect() as conn:
        unmapped = conn.execute(sa.select(sa.func.count()).select_from(t.detection)
                                .where(d.actor_id.not_in(sa.select(m.actor_id)))).scalar_one()
        mapped = conn.execute(sa.select(sa.func.count()).select_from(t.detection)
                              .where(d.actor_id.in_(sa.select(m.actor_id)))).scalar_one()
    assert unmapped > 0 and mapped > 0


def test_the_queue_is_empty_after_detection_and_a_second_run_changes_nothing(loaded):
    engine, tenant, first = loaded
    assert first.new > 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.detection_queue)).scalar_one() == 0
    before = table_digests(engine)
    again = run_detection(engine, tenant)
    assert (again.evaluated, again.new, again.updated) == (0, 0, 0)
    assert table_digests(engine) == before


@pytest.fixture
def fresh(sandbox, monkeypatch, tmp_path):
    """A warehouse of its own (for tests that change data), loaded and detected like ``loaded``."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    migrate(engine)
    sandbox.reset()
    tenant = _load(engine, sandbox, monkeypatch)
    yield engine, tenant
    engine.dispose()


def test_an_escalated_session_updates_its_detection_in_place(fresh):
    """A session re-read with a higher score and a newer lastUpdated: same detection rows (no
    duplicate), severity raised, first_seen_at kept; it now also fires the critical-risk rule."""
    engine, tenant = fresh
    run_detection(engine, tenant)
    sessions = _sessions(engine)
    sid, raw = next((sid, raw) for sid, raw in sorted(sessions.items())
                    if SYSTEM_RULES["removable-media"](raw) and _severity(raw) == 2)
    d = t.detection.c
    with engine.connect() as conn:
        before = {row.rule_key: row for row in conn.execute(sa.select(t.detection).where(d.subject_id == sid))}
    escalated = copy.deepcopy(raw)
    later = raw["lastUpdated"] + 60_000
    escalated["scores"].append({"score": 10, "severity": 4, "sourceTimestamp": later})
    escalated["lastUpdated"] = later
    with engine.begin() as conn:
        assert STREAMS["sessions"].load_batch(conn, tenant, [escalated]) == 1
    result = run_detection(engine, tenant)
    assert (result.evaluated, result.updated) == (1, len(before))
    with engine.connect() as conn:
        after = {row.rule_key: row for row in conn.execute(sa.select(t.detection).where(d.subject_id == sid))}
    assert set(after) == set(before) | {"critical-risk-session"}
    for key, row in before.items():
        assert after[key].severity == 4
        assert after[key].first_seen_at == row.first_seen_at
        assert after[key].last_changed_at >= row.last_changed_at


def _catalog_file(tmp_path, change) -> str:
    data = yaml.safe_load(detection_rules_path().read_text())
    change(data)
    path = tmp_path / "detection_rules.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_renamed_removed_and_overridden_code42_rules(fresh, tmp_path):
    engine, tenant = fresh
    r = t.code42_alert_rule.c
    with engine.connect() as conn:
        rules = conn.execute(sa.select(r.rule_id, r.name).where(r.is_enabled).order_by(r.rule_id)).all()
    renamed, removed, overridden = rules[0], rules[1], rules[2]
    path = _catalog_file(tmp_path, lambda d: d["alert_rules"]["overrides"].update({overridden.name: False}))
    run_detection(engine, tenant)
    hits = {rule.rule_id: len(_detected(engine, f"code42-alert-rule:{rule.rule_id}")) for rule in rules}
    with engine.begin() as conn:  # what the next reference refresh would mirror
        conn.execute(t.code42_alert_rule.update().where(r.rule_id == renamed.rule_id).values(name="USB copies"))
        conn.execute(t.code42_alert_rule.delete().where(r.rule_id == removed.rule_id))
    with engine.begin() as conn:  # the alerts come round again, as if never evaluated for two rules
        conn.execute(t.detection.delete().where(t.detection.c.rule_key.in_(
            [f"code42-alert-rule:{x.rule_id}" for x in (renamed, overridden)])))
        conn.execute(t.detection_queue.insert().from_select(
            ["tenant_id", "subject_type", "subject_id"],
            sa.select(t.code42_alert.c.tenant_id, sa.literal("alert"), t.code42_alert.c.alert_id)))
    run_detection(engine, tenant, load_catalog(path))
    d = t.detection_rule.c
    with engine.connect() as conn:
        got = {row.code42_rule_id: row for row in conn.execute(
            sa.select(t.detection_rule).where(d.kind == "alert_rule"))}
        kept = conn.execute(sa.select(sa.func.count()).select_from(t.detection).where(
            t.detection.c.rule_key == f"code42-alert-rule:{removed.rule_id}")).scalar_one()
    assert got[renamed.rule_id].name == "USB copies Detected by Code42"
    assert got[removed.rule_id].removed_at is not None and not got[removed.rule_id].enabled
    assert kept == hits[removed.rule_id] > 0  # detections of a removed rule stay on the users' timelines
    assert not got[overridden.rule_id].enabled
    # the overridden rule no longer detects; the renamed one detects as before
    assert {k: len(_detected(engine, f"code42-alert-rule:{k}")) for k in hits} == {**hits, overridden.rule_id: 0}


def test_custom_rules_combine_criteria(sandbox, monkeypatch, tmp_path, loaded):
    """A custom rule over departments, event counts and all-of indicators fires exactly where the
    payloads and the actor directory say it should."""
    engine, _tenant, _ = loaded
    with engine.connect() as conn:
        departments = dict(conn.execute(sa.select(t.code42_actor.c.actor_id, t.code42_actor.c.department)).all())
    sessions = _sessions(engine)
    counts = {sid: sum(raw[k] or 0 for k in ("noRiskEvents", "lowEvents", "moderateEvents", "highEvents",
                                             "criticalEvents")) for sid, raw in sessions.items()}
    department = max({v for v in departments.values() if v}, key=lambda dep: sum(
        1 for raw in sessions.values() if departments.get(raw["actorId"]) == dep))
    rule = {"key": "dept-bulk", "name": "Bulk moves in one department", "kind": "custom",
            "lesson": {"title": "Handling data"},
            "when": {"departments": [department.upper()], "min_event_count": 3,
                     "risk_indicators_all": ["Document"], "max_severity": "HIGH"}}
    path = _catalog_file(tmp_path, lambda d: d.__setitem__("rules", [rule]))
    expected = {sid for sid, raw in sessions.items()
                if departments.get(raw["actorId"]) == department and counts[sid] >= 3
                and "Document" in _names(raw) and _severity(raw) <= 3}
    assert expected and len(expected) < len(sessions)
    check = create_warehouse_engine(f"sqlite:///{tmp_path / 'custom.db'}")
    migrate(check)
    sandbox.reset()
    run_detection(check, _load(check, sandbox, monkeypatch), load_catalog(path))
    assert _detected(check, "dept-bulk") == expected


VALID_RULE = {"key": "k", "name": "My rule", "lesson": {"title": "A lesson"}, "when": {"min_severity": "HIGH"}}

BAD_RULES = [
    ({"when": {"vectors": ["usb_stick"]}}, "when.vectors: unknown ['usb_stick']"),
    ({"when": {"min_severity": "SEVERE"}}, "when.min_severity"),
    ({"when": {"alert_rules": ["x"]}}, "alert_rules cannot be used by a rule on sessions"),
    ({"on": "alert", "when": {"vectors": ["removable_media"]}}, "vectors cannot be used by a rule on alerts"),
    ({"when": {}}, "at least one criterion"),
    ({"when": {"severity": "HIGH"}}, "when.severity: Extra inputs are not permitted"),
    ({"when": {"min_severity": "CRITICAL", "max_severity": "LOW"}}, "above max_severity"),
    ({"when": {"min_event_count": 0}}, "when.min_event_count"),
    ({"key": "Not A Key"}, "key: String should match pattern"),
    ({"lesson": None}, "lesson"),
]


@pytest.mark.parametrize(("change", "message"), BAD_RULES, ids=[m for _, m in BAD_RULES])
def test_custom_rule_errors_name_file_rule_and_field(tmp_path, change, message):
    path = _catalog_file(tmp_path, lambda d: d["rules"].append({**VALID_RULE, **change}))
    count = len(yaml.safe_load(Path(path).read_text())["rules"])
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    text = str(err.value)
    assert text.startswith(f"{path}: rule {count} ('My rule')"), text
    assert message in text


def test_catalog_file_level_errors(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules: [")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)
    dup = _catalog_file(tmp_path, lambda d: d["rules"].append(dict(d["rules"][0])))
    with pytest.raises(CatalogError, match=r"rule keys must be unique; repeated: \['removable-media'\]"):
        load_catalog(dup)
    path.write_text(textwrap.dedent("""\
        version: 1
        lesson_url: "x/{lesson_id}"
        vocabulary: {indicators: {Removable media: {}}}
        rules: [{key: a, name: A, lesson: {title: L}, when: {min_severity: LOW}}]
    """))
    with pytest.raises(CatalogError, match=r"vocabulary\.indicators\.Removable media: .*at least one of"):
        load_catalog(path)
    assert len(default_catalog().rules) >= 9


def test_sqlite_and_postgres_detect_the_same(loaded, pg_warehouse, sandbox, monkeypatch):
    engine, _, _ = loaded
    sandbox.reset()
    run_detection(pg_warehouse, _load(pg_warehouse, sandbox, monkeypatch))
    tables = (t.detection, t.detection_rule)
    assert table_digests(pg_warehouse, tables) == table_digests(engine, tables)
