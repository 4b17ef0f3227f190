"""`make mutation`: mutmut 3 over the modules that decide correctness, with their own tests only.

mutmut names a mutant by its file's path, dropping only a leading ``src/``, and puts ``mutants/``,
``mutants/src`` first on sys.path. Our packages live in ``plugins/`` (on sys.path through the
editable install), so ``plugins/code42_hook/retry.py`` would be ``plugins.code42_hook.retry`` to
mutmut but ``code42_hook.retry`` to the tests, and mutmut stops ("tests recorded trampoline hits
but none match any mutant key"). So the run happens in a scratch copy, ``build/mutation/work``,
where ``src/`` holds a copy of ``plugins/``'s packages: the names match and ``mutants/src`` comes
before the editable ``plugins/`` on sys.path. include/ (SQL, templates, config) is read from this
checkout and copied along with dags/. The modules, the tests that judge them and the lines left alone
are ``[tool.mutmut]`` in pyproject.toml; the functions whose mutants run (mutmut's own name globs,
passed to ``mutmut run``) are ``[tool.securitycoach.mutation] mutants``.

Writes ``build/mutation/summary.json`` (score, killed, survived, survivors, seconds),
``build/mutation/survivors.diff`` (each survivor's diff) and ``build/mutation/run.log``.
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
WORK = OUT / "work"
PACKAGES = ("code42_hook", "knowbe4_hook", "operators", "securitycoach")
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          37: "caught by type check", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}


def build_work_tree() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / "plugins" / package, WORK / "src" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", WORK / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", WORK / "pyproject.toml")
    for folder in ("dags", "include"):  # copied into mutants/ too (also_copy): tests find them from there
        (WORK / folder).symlink_to(ROOT / folder)


def run_mutmut(args: list[str], log, budget_s: float) -> tuple[int, bool]:
    """``mutmut run`` within ``budget_s`` seconds: (exit code, finished?). mutmut checks the mutants
    whose tests are quickest first; past the budget it is stopped (its whole process group) and the
    mutants it did not reach count as "not checked" in the summary."""
    env = {**os.environ, "SECURITYCOACH_HOME": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mutmut"), "run", *args], cwd=WORK, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=budget_s), True
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
                break
        return proc.returncode if proc.returncode is not None else -9, False


def results(selected: list[str]) -> dict[str, str]:
    """Status of each selected mutant (the files hold every mutant of a module, checked or not)."""
    statuses = {}
    for meta in sorted((WORK / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in selected):
                statuses[name] = STATUS.get(code, "suspicious")
    return statuses


def diffs(names: list[str]) -> str:
    """``mutmut show`` of each mutant, in one process (one ``mutmut show`` each takes seconds)."""
    script = ("import sys\nfrom mutmut.__main__ import show\n"
              "for name in sys.argv[1:]:\n    show.callback(name)\n    print()\n")
    env = {**os.environ, "SECURITYCOACH_HOME": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *names], cwd=WORK, env=env, text=True, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout if names else ""


def main() -> int:
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    build_work_tree()
    selected = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["securitycoach"][
        "mutation"]["mutants"]
    (OUT / "run.log").unlink(missing_ok=True)  # a new file: nothing of an earlier run's output stays in it
    budget = float(os.environ.get("MUTATION_BUDGET_S", "1800"))
    with (OUT / "run.log").open("w", encoding="utf-8") as log:
        returncode, finished = run_mutmut(["--max-children", os.environ.get("MUTATION_CHILDREN", "2"), *selected],
                                          log, budget)
    statuses = results(selected)
    if not statuses or set(statuses.values()) <= {"not checked"}:
        print((OUT / "run.log").read_text(encoding="utf-8")[-3000:])
        print(f"mutmut checked no mutant (exit {returncode}); see {OUT / 'run.log'}")
        return 1
    counts = Counter(statuses.values())
    killed = sum(n for status, n in counts.items() if status in DETECTED)
    judged = sum(n for status, n in counts.items() if status not in {"skipped", "not checked"})
    survivors = sorted(name for name, status in statuses.items()
                       if status not in DETECTED | {"skipped", "not checked"})
    (OUT / "survivors.diff").write_text(diffs(survivors), encoding="utf-8")
    seconds = round(time.monotonic() - started, 1)
    by_module = Counter(name.split(".x")[0] for name in statuses)
    summary = {
        "tool": f"mutmut {importlib.metadata.version('mutmut')}",
        "score": round(100 * killed / judged, 1) if judged else 0.0,
        "killed": killed, "survived": len(survivors), "total": len(statuses),
        "by_status": dict(sorted(counts.items())), "mutants_by_module": dict(sorted(by_module.items())),
        "survivors": [{"mutant": name, "status": statuses[name]} for name in survivors],
        "seconds": seconds, "finished": finished, "budget_s": budget,
        "not_checked": counts.get("not checked", 0),
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"mutation score {summary['score']} %: {killed} killed, {len(survivors)} survived of {judged} "
          f"({dict(sorted(counts.items()))}) in {seconds:.0f} s")
    if not finished:
        print(f"stopped at the {budget:.0f} s budget (MUTATION_BUDGET_S): {counts.get('not checked', 0)} mutants "
              "not checked (mutmut takes the quickest first); the score is over the checked ones")
    for name in survivors:
        print(f"  survived: {name} ({statuses[name]})")
    print(f"diffs of the survivors: {OUT / 'survivors.diff'}; summary: {OUT / 'summary.json'}")
    return 0 if returncode == 0 or not finished else returncode


if __name__ == "__main__":
    sys.exit(main())
