"""Reusable pytest fixtures: the Incydr + KnowBe4 sandbox as a real HTTP server in a child process.

tests/conftest.py loads this module as a pytest plugin, so every test can ask for them.

Each fixture gives an ``incydr_sandbox.process.SandboxProcess``: ``base_url``, ``client_id``,
``client_secret``, ``ksat_key``, ``tenant_id``, ``anchor`` / ``anchor_ms`` and the helpers
``set_faults(**knobs)``, ``faults()``, ``reset()``, ``stats()``, ``advance(minutes)``,
``revoke_tokens()``, ``truth()`` and ``admin(method, name, payload)``.
"""

from __future__ import annotations

import contextlib

import pytest

from incydr_sandbox.process import SandboxProcess

SANDBOX_ANCHOR = "2026-11-01T00:00:00Z"  # pinned: every test sees the same tenant, byte for byte
SANDBOX_SEED = 42


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox for the whole test session (seed 42, anchor pinned), default flags."""
    with SandboxProcess(seed=SANDBOX_SEED, anchor=SANDBOX_ANCHOR) as sb:
        yield sb


@pytest.fixture
def clean_sandbox(sandbox):
    """The shared sandbox with faults, counters and clock reset before and after the test."""
    sandbox.reset()
    yield sandbox
    sandbox.reset()


@pytest.fixture(scope="session")
def start_sandbox():
    """Factory for extra sandboxes with their own CLI flags, stopped at the end of the session::

        big = start_sandbox(sessions=200_000, actors=700)
        slow = start_sandbox(latency_ms=200, fail_next=[503, 503])
    """
    with contextlib.ExitStack() as stack:

        def start(*, seed: int = SANDBOX_SEED, anchor: str = SANDBOX_ANCHOR, **flags) -> SandboxProcess:
            return stack.enter_context(SandboxProcess(seed=seed, anchor=anchor, **flags))

        yield start
