"""`python -m fakes.sumup`: serve the fake SumUp until interrupted.

Every option falls back to an environment variable (FAKE_SUMUP_HOST, FAKE_SUMUP_PORT,
FAKE_SUMUP_CLIENT_ID, FAKE_SUMUP_CLIENT_SECRET, FAKE_SUMUP_REDIRECT_URIS (comma-separated),
FAKE_SUMUP_ROTATION, FAKE_SUMUP_REJECT_REUSE, FAKE_SUMUP_LATENCY_MS, FAKE_SUMUP_EXPIRES_IN,
FAKE_SUMUP_SEED_USERS), then to the local-development defaults.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import cast

from fakes.sumup.models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    ROTATIONS,
    Rotation,
)
from fakes.sumup.server import FakeSumUp


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FAKE_SUMUP_{name}") or default


def _env_bool(name: str) -> bool:
    return _env(name, "").strip().lower() in {"1", "true", "yes", "on"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fakes.sumup", description="A fake SumUp OAuth server and API."
    )
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("PORT", "8765")))
    parser.add_argument("--client-id", default=_env("CLIENT_ID", DEFAULT_CLIENT_ID))
    parser.add_argument("--client-secret", default=_env("CLIENT_SECRET", DEFAULT_CLIENT_SECRET))
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help=f"registered redirect URI; repeat for several (default {DEFAULT_REDIRECT_URI})",
    )
    parser.add_argument("--rotation", choices=ROTATIONS, default=_env("ROTATION", "sumup"))
    parser.add_argument(
        "--reject-reuse",
        action="store_true",
        default=_env_bool("REJECT_REUSE"),
        help="a rotated-out refresh token answers invalid_grant",
    )
    parser.add_argument("--latency-ms", type=int, default=int(_env("LATENCY_MS", "0")))
    parser.add_argument("--expires-in", type=int, default=int(_env("EXPIRES_IN", "3599")))
    parser.add_argument(
        "--seed-users",
        type=int,
        default=int(_env("SEED_USERS", "0")),
        help="also create artist1..N@example.com, each with its own merchant",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redirect_uris = args.redirect_uris or [
        uri.strip() for uri in _env("REDIRECT_URIS", DEFAULT_REDIRECT_URI).split(",") if uri.strip()
    ]
    fake = FakeSumUp(
        args.host,
        args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=redirect_uris,
        rotation=cast(Rotation, args.rotation),
        reject_reuse=args.reject_reuse,
        latency_ms=args.latency_ms,
        expires_in=args.expires_in,
        seed_users=args.seed_users,
        verbose=args.verbose,
    )
    url = fake.bind()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # leaves serve_forever in the main thread; stop() follows

    signal.signal(signal.SIGTERM, on_signal)
    print(f"Fake SumUp listening on {url}", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
