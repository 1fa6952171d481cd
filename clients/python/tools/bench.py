"""The bench program of /work/wt/INTEROP.md: encrypt and decrypt of 1 KiB per second with keys
cached, then users/s of decrypt_many with a cold cache; one thread. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from interop import client_from_env


def per_second(seconds: float, run: Callable[[], object]) -> float:
    warm_until = time.perf_counter() + min(1.0, seconds / 5)
    while time.perf_counter() < warm_until:
        run()
    count = 0
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        for _ in range(100):
            run()
        count += 100
        now = time.perf_counter()
    return count / (now - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--user-prefix", required=True)
    parser.add_argument("--category", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    users = [f"{args.user_prefix}{i}" for i in range(args.users)]
    padlock = client_from_env()
    try:
        plaintext = os.urandom(1024)
        sealed = padlock.encrypt(users[0], args.category, plaintext)
        encrypt = per_second(args.seconds, lambda: padlock.encrypt(users[0], args.category, plaintext))
        decrypt = per_second(args.seconds, lambda: padlock.decrypt(users[0], sealed))
        records = [(u, padlock.encrypt(u, args.category, plaintext)) for u in users]
        # Cold cache: every repetition asks Padlock for every user again (one batch-get per chunk).
        bulk_users = 0
        start = time.perf_counter()
        end = start + args.seconds
        while True:
            for u in users:
                padlock.forget(u)
            results = padlock.decrypt_many(records)
            failed = [r.error for r in results if r.error is not None]
            if failed:
                raise SystemExit(f"bulk decrypt failed: {failed[0]}")
            bulk_users += len(users)
            if time.perf_counter() >= end:
                break
        bulk = bulk_users / (time.perf_counter() - start)
    finally:
        padlock.close()
    print(
        json.dumps(
            {
                "client": "python",
                "encrypt_1k_per_s": round(encrypt),
                "decrypt_1k_per_s": round(decrypt),
                "bulk_users_per_s": round(bulk),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
