"""Runs ./bench as the lead's driver would, against a padlock serve of its own (SQLite, the test
helper's deployment), after creating the users. From the repository root, after npm run build:

    clients/python/dist/venv/bin/python clients/python/tools/bench_local.py --users 1000 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from padlock_client import EndpointGroup, PadlockClient, PadlockClientOptions  # noqa: E402
from tests.padlock_processes import Deployment  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    deployment = Deployment(max_staleness_seconds=30)
    try:
        server = deployment.start("padlock")
        credential = deployment.credentials["app"]
        options = PadlockClientOptions(
            groups=(EndpointGroup("p", (server.url,)),), credential=credential, timeout_ms=10_000, deadline_ms=20_000
        )
        with PadlockClient(options) as padlock, ThreadPoolExecutor(8) as pool:
            list(pool.map(padlock.create_keychain, [f"bench-{i}" for i in range(args.users)]))
        env = {**os.environ, "PADLOCK_INTEROP_URLS": server.url, "PADLOCK_INTEROP_CREDENTIAL": credential}
        command = [str(HERE / "bench"), "--users", str(args.users), "--user-prefix", "bench-"]
        command += ["--category", "profile", "--seconds", str(args.seconds)]
        return subprocess.run(command, env=env).returncode
    finally:
        deployment.close()


if __name__ == "__main__":
    sys.exit(main())
