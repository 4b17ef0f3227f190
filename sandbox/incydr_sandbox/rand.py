"""Deterministic randomness: every random choice is keyed by (seed, purpose, index...)."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime


def key64(seed: int, *parts) -> int:
    """A stable 64-bit number for (seed, *parts); the same on every run and platform."""
    text = "/".join(map(str, (seed, *parts)))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def rng(seed: int, *parts) -> random.Random:
    return random.Random(key64(seed, *parts))


def unit(seed: int, *parts) -> float:
    """A stable number in [0, 1) for (seed, *parts), cheaper than building a Random."""
    return key64(seed, *parts) / 2**64


def uuid_for(seed: int, *parts) -> str:
    """A random-looking, stable version-4 UUID for (seed, *parts)."""
    digest = hashlib.blake2b("/".join(map(str, (seed, *parts))).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def indexed_id(seed: int, kind: str, index: int, slot: int = 0) -> str:
    """UUID-shaped id whose last group encodes (slot, index), so a lookup needs no scan."""
    head = uuid_for(seed, kind, index, slot)[:23]
    return f"{head}-{slot:02x}{index:010x}"


def parse_indexed_id(value: str) -> tuple[int, int] | None:
    """(index, slot) of an ``indexed_id``; None if the text cannot be one."""
    tail = value.rsplit("-", 1)[-1]
    if len(value) != 36 or len(tail) != 12:
        return None
    try:
        raw = bytes.fromhex(tail)
    except ValueError:
        return None
    return int.from_bytes(raw[1:], "big"), raw[0]


def iso_ms(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as the alerts API writes times."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def iso_date(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).strftime("%Y-%m-%d")


def weighted(r: random.Random, table: tuple[tuple[object, float], ...]):
    """One value of ``table`` ((value, weight), ...) chosen by weight."""
    total = sum(w for _, w in table)
    roll = r.random() * total
    for value, w in table:
        roll -= w
        if roll < 0:
            return value
    return table[-1][0]
