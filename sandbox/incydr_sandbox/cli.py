"""incydr-sandbox: a local, deterministic Code42 Incydr + KnowBe4 Reporting API.

Prints one line to stdout once it accepts connections:
  serving http://HOST:PORT client_id=ID client_secret=SECRET
Everything else goes to stderr. See sandbox/README.md for credentials, knobs and admin endpoints.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="incydr-sandbox", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--anchor", help="end of the data: ISO-8601 UTC or epoch ms (default: now, to the minute)")
    p.add_argument("--days", type=int, default=30, help="the data covers [anchor - days, anchor]")
    p.add_argument("--sessions", type=int, default=1440, help="sessions begun over the span (default ~48/day)")
    p.add_argument("--actors", type=int, default=40)
    p.add_argument("--write-truth", metavar="PATH", type=Path,
                   help="write the actor -> KSAT user ground truth (.csv: CSV, else JSON) and exit")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--smtp-host", default="127.0.0.1", help="address of the SMTP delivery sink")
    p.add_argument("--smtp-port", type=int, default=0, help="port of the SMTP delivery sink (0: a free one)")
    p.add_argument("--admin-any-host", action="store_true",
                   help="answer /_sandbox/* from any client, not only local ones")
    knobs = p.add_argument_group("fault knobs (runtime: GET/POST /_sandbox/faults with the same names)")
    for f in fields(Faults):
        flag = f"--{f.name.replace('_', '-')}"
        if f.name == "fail_next":
            knobs.add_argument(flag, type=int, nargs="*", default=[], metavar="STATUS")
        elif isinstance(f.default, bool):
            knobs.add_argument(flag, action="store_true")
        else:
            knobs.add_argument(flag, type=type(f.default), default=f.default, metavar=type(f.default).__name__.upper())
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
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
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
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
