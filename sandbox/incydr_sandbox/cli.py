"""incydr-sandbox: a local, deterministic Code42 Incydr + KnowBe4 Reporting API.

Prints one line to stdout once it accepts connections:
  serving http://HOST:PORT client_id=ID client_secret=SECRET
Everything else goes to stderr. See sandbox/README.md for credentials, knobs and admin endpoints.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from incydr_sandbox.config import (
    CLIENT_SECRET,
    DEFAULT_CLIENT_ID,
    Faults,
    SandboxConfig,
    TenantConfig,
    parse_anchor,
)
from incydr_sandbox.identities import build_directory, truth_text

DISTRIBUTION = "incydr-securitycoach"  # the project the sandbox ships in (pyproject.toml), for --version


def project_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a checkout that is not installed
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A usage error in one line (and exit status 2)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="incydr-sandbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {project_version()}",
                   help="print the version of the installed project and exit")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free port (default)")
    p.add_argument("--seed", type=int, default=42,
                   help="seed of the generated tenant: the same seed and anchor give the same data (default 42)")
    p.add_argument("--anchor", help="end of the data: ISO-8601 UTC or epoch ms (default: now, to the minute)")
    p.add_argument("--days", type=int, default=30, help="the data covers [anchor - days, anchor] (default 30)")
    p.add_argument("--sessions", type=int, default=1440,
                   help="sessions begun over the span (default 1440, about 48 a day)")
    p.add_argument("--actors", type=int, default=40, help="Code42 actors (people) of the tenant (default 40)")
    p.add_argument("--write-truth", metavar="PATH", type=Path,
                   help="write the actor -> KSAT user ground truth (.csv: CSV, else JSON) and exit")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="level of the server's log on stderr (default warning)")
    p.add_argument("--smtp-host", default="127.0.0.1", help="address of the SMTP delivery sink (default 127.0.0.1)")
    p.add_argument("--smtp-port", type=int, default=0, help="port of the SMTP delivery sink (0: a free one)")
    p.add_argument("--admin-any-host", action="store_true",
                   help="answer /_sandbox/* from any client, not only local ones")
    knobs = p.add_argument_group("fault knobs (runtime: GET/POST /_sandbox/faults with the same names)")
    for f in fields(Faults):
        flag = f"--{f.name.replace('_', '-')}"
        text = f.metadata["help"]
        if f.name == "fail_next":
            knobs.add_argument(flag, type=int, nargs="*", default=[], metavar="STATUS", help=text)
        elif isinstance(f.default, bool):
            knobs.add_argument(flag, action="store_true", help=text)
        else:
            knobs.add_argument(flag, type=type(f.default), default=f.default, metavar=type(f.default).__name__.upper(),
                               help=f"{text} (default {f.default})")
    return p


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    tenant = TenantConfig(seed=args.seed, anchor_ms=parse_anchor(args.anchor), days=args.days,
                          sessions=args.sessions, actors=args.actors)
    faults = Faults()
    faults.update({f.name: getattr(args, f.name) for f in fields(Faults)})
    return SandboxConfig(tenant=tenant, faults=faults, admin_any_host=args.admin_any_host,
                         smtp_host=args.smtp_host, smtp_port=args.smtp_port)


def write_truth(config: TenantConfig, path: Path) -> None:
    directory = build_directory(config.seed, config.actors, config.anchor_ms, config.span_start_ms)
    path.write_text(truth_text(directory, "csv" if path.suffix.lower() == ".csv" else "json"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Serve (or write the ground truth); every error ends as one line on stderr, exit status 1 or 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return _run(args, config)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"incydr-sandbox: {exc.strerror or exc}: {exc.filename or f'{args.host}:{args.port}'}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a traceback
        print(f"incydr-sandbox: unexpected {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}",
              file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, config: SandboxConfig) -> int:
    if args.write_truth:
        write_truth(config.tenant, args.write_truth)
        print(f"wrote ground truth for {config.tenant.actors} actors to {args.write_truth}", file=sys.stderr)
        return 0

    from incydr_sandbox.server import serve_forever  # imported late: --write-truth needs no web stack
    from incydr_sandbox.state import SandboxState

    def announce(base_url: str) -> None:
        print(f"serving {base_url} client_id={DEFAULT_CLIENT_ID} client_secret={CLIENT_SECRET}", flush=True)

    try:
        serve_forever(SandboxState(config), args.host, args.port, access_log=args.access_log,
                      log_level=args.log_level, on_started=announce)
    except OSError as exc:
        print(f"incydr-sandbox: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
