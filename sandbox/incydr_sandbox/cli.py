"""``incydr-sandbox``: serve the synthetic tenant on a loopback port."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import fields

import uvicorn

from incydr_sandbox.app import build_app
from incydr_sandbox.config import CLIENT_SECRET, Faults, TenantConfig, parse_anchor
from incydr_sandbox.state import SandboxState


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="incydr-sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--anchor", help="end of the data (ISO-8601 UTC or epoch ms); default now")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--sessions", type=int, default=1440, help="sessions over the whole span")
    p.add_argument("--actors", type=int, default=40)
    p.add_argument("--write-truth", metavar="PATH",
                   help="write the actor -> KSAT user ground truth (JSON) for this seed and exit")
    for f in fields(Faults):
        if f.name == "fail_next":
            p.add_argument("--fail-next", type=int, nargs="*", default=[])
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.sessions < 1 or args.actors < 2 or args.days < 1:
        print("incydr-sandbox: --sessions >= 1, --actors >= 2 and --days >= 1 are required", file=sys.stderr)
        return 2
    config = TenantConfig(seed=args.seed, anchor_ms=parse_anchor(args.anchor), days=args.days,
                          sessions=args.sessions, actors=args.actors)
    faults = Faults()
    faults.update({f.name: getattr(args, f.name) for f in fields(Faults)})
    state = SandboxState(config, faults)
    if args.write_truth:
        with open(args.write_truth, "w", encoding="utf-8") as fh:
            json.dump(state.ksat()[1], fh, indent=1, sort_keys=True)
        return 0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(state), log_level="warning", access_log=False,
                                           timeout_keep_alive=30))

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.01)
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"serving http://{host}:{port} client_id=sandbox-client client_secret={CLIENT_SECRET}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    asyncio.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
