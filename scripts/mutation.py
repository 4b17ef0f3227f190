"""`make mutation`: mutmut 3 over the functions that decide correctness, each group with its own tests.

mutmut names a mutant by its file's path, dropping only a leading ``src/``, and puts ``mutants/``,
``mutants/src`` first on sys.path. Our packages live in ``plugins/`` (on sys.path through the
editable install), so ``plugins/apiclient/retry.py`` would be ``plugins.apiclient.retry`` to
mutmut but ``apiclient.retry`` to the tests, and mutmut stops ("tests recorded trampoline hits
but none match any mutant key"). So each run happens in a scratch copy, ``build/mutation/<group>``,
where ``src/`` holds a copy of ``plugins/``'s packages: the names match and ``mutants/src`` comes
before the editable ``plugins/`` on sys.path. include/ (SQL, templates, config) is read from this
checkout and copied along with dags/.

The groups are ``[[tool.securitycoach.mutation.group]]`` in pyproject.toml: the functions whose
mutants run (mutmut's name globs) and the tests that judge them. One mutmut run per group, with
``only_mutate`` (the groups' modules) and the test selection written into that copy's
pyproject, so a mutant of the paginator runs the hook's tests, not every test that happens to page.
The settings all groups share are ``[tool.mutmut]``.

Writes ``build/mutation/summary.json`` (score, killed, survived, survivors, seconds, per group),
``build/mutation/survivors.diff`` (each survivor's diff) and ``build/mutation/<group>.log``.
Score = killed (incl. timeouts) / all mutants judged; "no tests" (no selected test runs that
code) counts as survived.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
PACKAGES = ("apiclient", "code42_hook", "knowbe4_hook", "operators", "securitycoach")
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          37: "caught by type check", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}


def module_of(pattern: str) -> str:
    """``apiclient.retry.*`` or ``apiclient.paging.xǁPageNumberTotalǁdone__mutmut_*``: the module."""
    return pattern.removesuffix(".*").split(".x")[0]


def build_work_tree(work: Path, group: dict) -> None:
    """A scratch copy for one group: src/ = plugins/' packages, the tests, and a pyproject whose
    ``[tool.mutmut]`` also names the group's modules (``only_mutate``) and tests."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / "plugins" / package, work / "src" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    modules = sorted({module_of(p) for p in group["mutants"]})
    settings = (f"only_mutate = {json.dumps(['src/' + m.replace('.', '/') + '.py' for m in modules])}\n"
                f"pytest_add_cli_args_test_selection = {json.dumps(group['tests'])}\n")
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if "\n[tool.mutmut]\n" not in text:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    (work / "pyproject.toml").write_text(text.replace("\n[tool.mutmut]\n", f"\n[tool.mutmut]\n{settings}", 1),
                                         encoding="utf-8")
    for folder in ("dags", "include"):  # copied into mutants/ too (also_copy): tests find them from there
        (work / folder).symlink_to(ROOT / folder)


def run_mutmut(work: Path, args: list[str], log, budget_s: float) -> tuple[int, bool]:
    """``mutmut run`` within ``budget_s`` seconds: (exit code, finished?). mutmut checks the mutants
    whose tests are quickest first; past the budget it is stopped (its whole process group) and the
    mutants it did not reach count as "not checked" in the summary."""
    env = {**os.environ, "SECURITYCOACH_HOME": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mutmut"), "run", *args], cwd=work, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=max(budget_s, 1)), True
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
                break
        return proc.returncode if proc.returncode is not None else -9, False


def results(work: Path, selected: list[str]) -> dict[str, str]:
    """Status of each selected mutant (the files hold every mutant of a module, checked or not)."""
    statuses = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in selected):
                statuses[name] = STATUS.get(code, "suspicious")
    return statuses


def diffs(work: Path, names: list[str]) -> str:
    """``mutmut show`` of each mutant, in one process (one ``mutmut show`` each takes seconds)."""
    script = ("import sys\nfrom mutmut.__main__ import show\n"
              "for name in sys.argv[1:]:\n    show.callback(name)\n    print()\n")
    env = {**os.environ, "SECURITYCOACH_HOME": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *names], cwd=work, env=env, text=True, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout if names else ""


def score(statuses: dict[str, str]) -> dict:
    counts = Counter(statuses.values())
    killed = sum(n for status, n in counts.items() if status in DETECTED)
    judged = sum(n for status, n in counts.items() if status not in {"skipped", "not checked"})
    survivors = sorted(name for name, status in statuses.items()
                       if status not in DETECTED | {"skipped", "not checked"})
    return {"score": round(100 * killed / judged, 1) if judged else 0.0, "killed": killed,
            "survived": len(survivors), "judged": judged, "total": len(statuses),
            "by_status": dict(sorted(counts.items())), "not_checked": counts.get("not checked", 0),
            "survivors": survivors}


def main() -> int:
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["securitycoach"][
        "mutation"]["group"]
    wanted = os.environ.get("MUTATION_GROUPS", "").split(",") if os.environ.get("MUTATION_GROUPS") else None
    if wanted and (unknown := set(wanted) - {g["name"] for g in groups}):
        raise SystemExit(f"MUTATION_GROUPS: no group {sorted(unknown)}; groups: {[g['name'] for g in groups]}")
    budget = float(os.environ.get("MUTATION_BUDGET_S", "3600"))
    children = os.environ.get("MUTATION_CHILDREN", "2")
    statuses: dict[str, str] = {}
    per_group, finished, failed, survivor_diffs = {}, True, [], []
    for group in groups:
        if wanted and group["name"] not in wanted:
            continue
        work, group_started = OUT / group["name"], time.monotonic()
        build_work_tree(work, group)
        left = budget - (time.monotonic() - started)
        print(f"group {group['name']}: {len(group['tests'])} test selections, {left:.0f} s of budget left", flush=True)
        with (OUT / f"{group['name']}.log").open("w", encoding="utf-8") as log:
            returncode, done = run_mutmut(work, ["--max-children", children, *group["mutants"]], log, left)
        found = results(work, group["mutants"])
        if not found or set(found.values()) <= {"not checked"}:
            print((OUT / f"{group['name']}.log").read_text(encoding="utf-8")[-3000:])
            print(f"group {group['name']}: mutmut checked no mutant (exit {returncode}); see "
                  f"{OUT / (group['name'] + '.log')}")
            failed.append(group["name"])
        finished = finished and done
        statuses.update(found)
        result = score(found)
        per_group[group["name"]] = {**{k: v for k, v in result.items() if k != "survivors"},
                                    "seconds": round(time.monotonic() - group_started, 1), "finished": done}
        survivor_diffs.append(diffs(work, result["survivors"]))
        print(f"group {group['name']}: {result['score']} % ({result['killed']} of {result['judged']}) in "
              f"{per_group[group['name']]['seconds']:.0f} s", flush=True)
    total = score(statuses)
    (OUT / "survivors.diff").write_text("\n".join(survivor_diffs), encoding="utf-8")
    seconds = round(time.monotonic() - started, 1)
    summary = {
        "tool": f"mutmut {importlib.metadata.version('mutmut')}",
        **{k: v for k, v in total.items() if k != "survivors"},
        "survivors": [{"mutant": name, "status": statuses[name]} for name in total["survivors"]],
        "groups": per_group, "seconds": seconds, "finished": finished, "budget_s": budget,
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"mutation score {total['score']} %: {total['killed']} killed, {total['survived']} survived of "
          f"{total['judged']} ({total['by_status']}) in {seconds:.0f} s")
    if not finished:
        print(f"stopped at the {budget:.0f} s budget (MUTATION_BUDGET_S): {total['not_checked']} mutants "
              "not checked (mutmut takes the quickest first); the score is over the checked ones")
    for name in total["survivors"]:
        print(f"  survived: {name} ({statuses[name]})")
    print(f"diffs of the survivors: {OUT / 'survivors.diff'}; summary: {OUT / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
