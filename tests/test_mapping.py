"""User mapping against the sandbox's ground truth, CSV uploads, rule-file validation."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from code42_hook import Code42Hook
from conftest import ROOT
from knowbe4_hook import KnowBe4Hook
from securitycoach import sync
from securitycoach.mapping.csv_upload import MAX_BYTES, resolve_upload_path
from securitycoach.mapping.rules import RuleFileError, load_rules
from securitycoach.mapping.store import apply_upload, refresh_ksat_directory, remap
from securitycoach.streams import STREAMS
from securitycoach.warehouse import schema as t
from securitycoach.warehouse.digest import table_digests

RULES = load_rules(ROOT / "include" / "config" / "mapping_rules.yaml")


@pytest.fixture
def hooks(clean_sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CODE42_DEFAULT", json.dumps({
        "conn_type": "code42", "login": clean_sandbox.client_id, "password": clean_sandbox.client_secret,
        "host": clean_sandbox.base_url, "extra": {"rate_limit_per_minute": 6000}}))
    monkeypatch.setenv("AIRFLOW_CONN_KNOWBE4_DEFAULT", json.dumps({
        "conn_type": "knowbe4", "password": clean_sandbox.ksat_key, "host": clean_sandbox.base_url,
        "extra": {"rate_limit_per_minute": 6000}}))
    return Code42Hook(), KnowBe4Hook()


@pytest.fixture
def loaded(warehouse, hooks):
    code42, knowbe4 = hooks
    tenant = code42.tenant_id
    assert sync.refresh_actors(warehouse, code42, tenant_id=tenant) == 40
    counts = refresh_ksat_directory(warehouse, knowbe4, tenant_id=tenant)
    assert counts["users"] > 30 and counts["groups"] >= 3
    return warehouse, tenant


def _state(engine, tenant):
    with engine.connect() as conn:
        mapped = {r.actor_id: r for r in conn.execute(
            sa.select(t.user_mapping).where(t.user_mapping.c.tenant_id == tenant))}
        unmapped = {r.actor_id: r for r in conn.execute(
            sa.select(t.unmapped_actor).where(t.unmapped_actor.c.tenant_id == tenant))}
    return mapped, unmapped


def test_default_rules_map_exactly_what_the_truth_says(loaded, clean_sandbox):
    engine, tenant = loaded
    truth = clean_sandbox.admin("GET", "truth")
    summary = remap(engine, tenant, RULES)
    mapped, unmapped = _state(engine, tenant)
    wrong = {a: (m.ksat_user_id, truth[a]) for a, m in mapped.items() if truth[a]["ksat_user_id"] != m.ksat_user_id}
    assert wrong == {}  # precision 100%: no wrong mapping
    mappable = {a for a, v in truth.items() if v["ksat_user_id"] != "none"}
    assert set(mapped) == mappable  # every actor the default rules can map is mapped
    assert set(unmapped) == set(truth) - mappable
    for actor_id, row in unmapped.items():  # two KSAT users with the actor's email: "ambiguous", never guessed
        expected = "ambiguous" if truth[actor_id]["kind"] == "ambiguous_duplicate" else "no_match"
        assert row.reason == expected, (truth[actor_id], row.evidence)
    assert "ambiguous" in {u.reason for u in unmapped.values()}
    rules_used = {m.rule for m in mapped.values()}
    assert {"Exact email", "KSAT alias", "Code42 alternate names", "Contractor id", "Parent actor"} <= rules_used
    assert all(m.evidence for m in mapped.values())
    assert summary["mapped"] == len(mappable) and summary["changed"] == len(truth)
    # Re-mapping with nothing changed writes nothing and keeps mapped_at.
    before = table_digests(engine, [t.user_mapping, t.unmapped_actor])
    assert remap(engine, tenant, RULES)["changed"] == 0
    assert table_digests(engine, [t.user_mapping, t.unmapped_actor]) == before


def test_csv_upload_remaps_without_re_extracting(loaded, hooks, clean_sandbox, sandbox):
    engine, tenant = loaded
    code42, _ = hooks
    truth = clean_sandbox.admin("GET", "truth")
    end = sandbox.anchor
    for stream in ("sessions", "alerts"):
        sync.extract_to_staging(engine, code42, STREAMS[stream], tenant_id=tenant, run_key="r1",
                                start=end - timedelta(days=10), end=end)
        sync.load_staged(engine, STREAMS[stream], tenant_id=tenant, run_key="r1")
    remap(engine, tenant, RULES)
    with engine.connect() as conn:
        waiting = {r.actor_id: r for r in conn.execute(sa.text("SELECT * FROM rpt_unmapped_events"))}
        users = conn.execute(sa.select(t.ksat_user).where(t.ksat_user.c.status == "active")).all()
    actors = {r.actor_id: r for r in _actors(engine)}
    # An unmapped actor with activity waiting whose name two KSAT users share: the admin settles it.
    ambiguous = next(a for a, v in truth.items() if v["kind"] == "ambiguous_name" and a in waiting)
    assert waiting[ambiguous].sessions + waiting[ambiguous].alerts > 0
    actor = actors[ambiguous]
    namesakes = [u for u in users if (u.first_name, u.last_name) == (actor.first_name, actor.last_name)]
    assert len(namesakes) >= 2
    target, target_email = namesakes[0].ksat_user_id, namesakes[0].email
    requests_before = clean_sandbox.stats()["data_requests"]
    hostile = ['=HYPERLINK("http://evil.example","x")', "<script>alert(1)</script>",
               "o'brien\"; DROP TABLE user_mapping;--", "+1-555-0100", "@SUM(A1)"]
    csv_text = "\ufeffcode42_identifier,ksat_email\r\n" + f"{actor.name.upper()},{target_email}\r\n" + "".join(
        '"' + h.replace('"', '""') + f'",{target_email}\r\n' for h in hostile)
    result = apply_upload(engine, tenant, csv_text.encode("utf-8"), file_name="map.csv", uploaded_by="tester")
    assert result.status == "applied" and result.rows == 1 + len(hostile) and result.errors == []
    remap(engine, tenant, RULES)
    mapped, unmapped = _state(engine, tenant)
    assert mapped[ambiguous].ksat_user_id == target and mapped[ambiguous].rule == "Manual CSV overrides"
    assert ambiguous not in unmapped
    with engine.connect() as conn:
        still_waiting = set(conn.execute(sa.text("SELECT actor_id FROM rpt_unmapped_events")).scalars())
        stored = conn.execute(sa.select(t.mapping_override.c.code42_identifier)).scalars().all()
    assert ambiguous not in still_waiting
    assert set(hostile) <= set(stored)  # stored faithfully, as data (and the tables are all still there)
    assert clean_sandbox.stats()["data_requests"] == requests_before  # nothing re-extracted


def _actors(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.code42_actor)).all()


BAD_FILES = {
    "no header": (b"a@example.com,b@example.com\n", "line 1: the header must be"),
    "unknown KSAT email": (b"code42_identifier,ksat_email\nx@example.com,nobody@nowhere.example\n",
                           "line 2: ksat_email 'nobody@nowhere.example' is not a KSAT user"),
    "three columns": (b"code42_identifier,ksat_email\na,b,c\n", "line 2: expected 2 columns, got 3"),
    "latin-1": ("code42_identifier,ksat_email\nJos\u00e9,x@example.com\n".encode("latin-1"), "not UTF-8: byte 0xe9"),
    "empty": (b"code42_identifier,ksat_email\n", "no data rows"),
    "control characters": (b"code42_identifier,ksat_email\na\x07b,x@example.com\n", "control characters"),
    "huge": (b"code42_identifier,ksat_email\n" + b"x" * (MAX_BYTES + 1), "the limit is"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_is_rejected_whole_and_changes_nothing(loaded, case):
    engine, tenant = loaded
    with engine.connect() as conn:
        email = conn.execute(sa.select(t.ksat_user.c.email).where(t.ksat_user.c.status == "active")).scalars().first()
    good = f"code42_identifier,ksat_email\nfirst@example.com,{email}\n".encode()
    assert apply_upload(engine, tenant, good, file_name="good.csv").status == "applied"
    before = table_digests(engine, [t.mapping_override])
    data, expected = BAD_FILES[case]
    result = apply_upload(engine, tenant, data, file_name=f"{case}.csv", uploaded_by="tester")
    assert result.status == "rejected" and any(expected in e for e in result.errors), result.errors
    assert table_digests(engine, [t.mapping_override]) == before
    with engine.connect() as conn:
        audit = conn.execute(sa.select(t.mapping_upload).order_by(t.mapping_upload.c.uploaded_at)).mappings().all()
    assert [a["status"] for a in audit] == ["applied", "rejected"] and audit[1]["errors"] == result.errors


def test_duplicate_identifier_is_reported_with_both_lines(loaded):
    engine, tenant = loaded
    with engine.connect() as conn:
        email = conn.execute(sa.select(t.ksat_user.c.email)).scalars().first()
    data = f"code42_identifier,ksat_email\nA@x.example,{email}\na@X.example,{email}\n".encode()
    result = apply_upload(engine, tenant, data, file_name="dup.csv")
    assert result.errors == ["line 3: duplicate code42_identifier 'a@X.example' (first on line 2)"]


def test_upload_paths_outside_the_allowed_folder_are_refused(tmp_path):
    allowed = tmp_path / "uploads"
    allowed.mkdir()
    (allowed / "ok.csv").write_text("x")
    (tmp_path / "secret.csv").write_text("x")
    assert resolve_upload_path("ok.csv", allowed) == (allowed / "ok.csv").resolve()
    for bad in ("../secret.csv", str(tmp_path / "secret.csv"), "/etc/passwd"):
        with pytest.raises(ValueError, match="outside the allowed folder"):
            resolve_upload_path(bad, allowed)
    (allowed / "link.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(ValueError, match="outside the allowed folder"):
        resolve_upload_path("link.csv", allowed)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_upload_path("missing.csv", allowed)


@pytest.mark.parametrize(("body", "expected"), [
    ("version: 1\nrules:\n  - {name: A, type: exact_email}\n  - {name: B, type: telepathy}\n",
     "rule 2 ('B'): (rule):"),
    ("version: 1\nrules:\n  - {name: A, type: transform, regex: '([a-z', replace: x}\n",
     "rule 1 ('A'): regex: Value error, not a valid regular expression"),
    ("version: 1\nrules:\n  - {name: A, type: field_match, code42_field: actor_id, ksat_field: shoe_size}\n",
     "rule 1 ('A'): ksat_field:"),
    ("version: 1\nrules:\n  - {name: A, type: exact_email, colour: red}\n", "rule 1 ('A'): colour: Extra inputs"),
    ("version: 1\nrules:\n  - {name: A, type: transform}\n", "rule 1 ('A'): (rule): Value error, a transform needs"),
    ("version: 2\nrules: []\n", "version:"),
    ("version: 1\nrules:\n  - {name: A, type: exact_email}\n  - {name: A, type: ksat_alias}\n", "repeated: ['A']"),
    ("rules: [unclosed\n", "not valid YAML"),
])
def test_rule_file_errors_name_file_rule_and_field(tmp_path, body, expected):
    path = tmp_path / "rules.yaml"
    path.write_text(body)
    with pytest.raises(RuleFileError) as error:
        load_rules(path)
    assert str(path) in str(error.value) and expected in str(error.value), str(error.value)


def test_cli_upload_reports_problems_and_exit_codes(tmp_path, pg_schema, loaded):
    engine, tenant = loaded
    url = engine.url.render_as_string(hide_password=False)
    extra = ["--search-path", pg_schema] if engine.dialect.name == "postgresql" else []
    with engine.connect() as conn:
        email = conn.execute(sa.select(t.ksat_user.c.email)).scalars().first()
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text("code42_identifier,ksat_email\nx,nobody@nowhere.example\n")
    good.write_text(f"code42_identifier,ksat_email\nx@example.com,{email}\n")
    cli = [sys.executable, "-m", "securitycoach.cli", "--warehouse", url, *extra, "mapping", "upload"]
    rejected = subprocess.run([*cli, str(bad), "--tenant", tenant], capture_output=True, text=True, check=False)
    assert rejected.returncode == 1 and "line 2: ksat_email 'nobody@nowhere.example' is not a KSAT user" in \
        rejected.stderr
    applied = subprocess.run([*cli, str(good), "--tenant", tenant], capture_output=True, text=True, check=False)
    assert applied.returncode == 0 and "applied 1 rows" in applied.stdout and "mapped" in applied.stdout, \
        applied.stderr


def test_shipped_rule_file_is_valid():
    out = subprocess.run([sys.executable, "-m", "securitycoach.cli", "mapping", "check-rules"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "10 rules, 10 enabled: OK"
    assert Path(ROOT / "include" / "config" / "mapping_rules.yaml").exists()


def test_mapping_upload_dag_applies_a_file_from_the_upload_folder(airflow_db, hooks, sqlite_warehouse, monkeypatch,
                                                                  tmp_path):
    engine = sqlite_warehouse
    refresh_ksat_directory(engine, hooks[1], tenant_id=hooks[0].tenant_id)
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_SECURITYCOACH_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": engine.url.database}))
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setenv("SECURITYCOACH_UPLOAD_DIR", str(uploads))
    with engine.connect() as conn:
        email = conn.execute(sa.select(t.ksat_user.c.email)).scalars().first()
    (uploads / "map.csv").write_text(f"code42_identifier,ksat_email\nsomeone@example.com,{email}\n")
    (tmp_path / "outside.csv").write_text(f"code42_identifier,ksat_email\nother@example.com,{email}\n")
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("securitycoach_mapping_upload")
    assert dag.test(run_conf={"csv_path": "../outside.csv"}).state == "failed"
    assert dag.test(run_conf={"csv_path": "map.csv"}).state == "success"
    with engine.connect() as conn:
        uploads_seen = conn.execute(sa.select(t.mapping_upload.c.file_name, t.mapping_upload.c.status)).all()
        overrides = conn.execute(sa.select(t.mapping_override.c.code42_identifier)).scalars().all()
    assert uploads_seen == [("map.csv", "applied")]  # the refused path never reached the warehouse
    assert overrides == ["someone@example.com"]


def test_regex_transform_and_ambiguity_in_the_engine():
    from securitycoach.mapping.engine import ActorIdentity, KsatIdentity, map_actors
    from securitycoach.mapping.rules import RuleSet

    rules = RuleSet.model_validate({"version": 1, "rules": [
        {"name": "Exact email", "type": "exact_email"},
        {"name": "Legacy mail host", "type": "transform", "regex": r"(?P<user>[^@]+)@mail\.legacy\.example",
         "replace": "{user}@example.com"},
    ]})
    users = [KsatIdentity(1, "ann@example.com"), KsatIdentity(2, "Bob@Example.com"), KsatIdentity(3, "bob@example.com")]
    actors = [ActorIdentity("a1", "ANN@mail.legacy.example"), ActorIdentity("a2", "bob@example.com"),
              ActorIdentity("a3", "carol@mail.legacy.example")]
    decisions = {d.actor_id: d for d in map_actors(actors, users, rules)}
    assert (decisions["a1"].ksat_user_id, decisions["a1"].rule) == (1, "Legacy mail host")
    assert "rewritten to 'ann@example.com'" in decisions["a1"].evidence
    assert (decisions["a2"].ksat_user_id, decisions["a2"].rule, decisions["a2"].reason) == (
        None, "Exact email", "ambiguous")  # the rule that found two: no later rule is tried
    assert decisions["a2"].evidence == "rule 'Exact email' found KSAT users 2, 3"
    assert (decisions["a3"].ksat_user_id, decisions["a3"].rule, decisions["a3"].reason) == (None, None, "no_match")
    assert decisions["a3"].evidence == "no rule found a KSAT user"
