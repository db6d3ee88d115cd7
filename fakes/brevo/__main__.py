"""`python -m fakes.brevo`: serve the fake Brevo until interrupted."""

from __future__ import annotations

import argparse
import contextlib

from fakes.brevo.server import FakeBrevo


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Brevo email API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8766)
    port = parser.parse_args().port
    fake = FakeBrevo(port)
    print(f"Fake Brevo on {fake.api_url}; run the site and workers with:")
    for name, value in fake.environ().items():
        print(f"  export {name}={value}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()


if __name__ == "__main__":
    main()
