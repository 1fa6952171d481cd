"""Crypto-shredding end to end with the Python client, in one command (after `npm run build` at
the repository root and `clients/python/setup.sh`):

    clients/python/dist/venv/bin/python examples/python/shred_demo.py

Starts a real Padlock (`padlock serve`, SQLite store) in a temp directory, registers this demo as
a service, keeps alice's and bob's records as envelopes in its own JSON file, shreds alice's
keychain, and shows that her record can no longer be read while bob's still can. Exits 0 when so.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from padlock_client import EndpointGroup, KeychainShredded, PadlockClient, PadlockClientOptions

CLI = Path(__file__).resolve().parents[2] / "packages" / "cli" / "dist" / "main.js"

with tempfile.TemporaryDirectory(prefix="padlock-py-demo-") as tmp:
    home = Path(tmp)
    (home / "kek.bin").write_bytes(secrets.token_bytes(32))
    (home / "kek.bin").chmod(0o600)
    config = home / "padlock.json"
    config.write_text(
        json.dumps(
            {
                "listen": {"host": "127.0.0.1", "port": 0},
                "categories": ["profile"],
                "keks": {"active": "kek-1", "files": [{"kid": "kek-1", "path": "kek.bin"}]},
                "store": {"kind": "sqlite", "sqlite": {"path": "padlock.db"}},
                "maxStalenessSeconds": 2,
            }
        )
    )
    config.chmod(0o600)
    padlock_cli = ["node", str(CLI)]
    made = subprocess.run(
        [
            *padlock_cli,
            "service",
            "create",
            "records-demo",
            "--read",
            "profile",
            "--create",
            "--shred",
            "-c",
            str(config),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    server = subprocess.Popen([*padlock_cli, "serve", "-c", str(config)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = next(e["port"] for e in map(json.loads, server.stdout) if e.get("msg") == "padlock listening")
        options = PadlockClientOptions(
            groups=(EndpointGroup("padlock", (f"http://127.0.0.1:{port}",)),),
            credential=json.loads(made.stdout)["credential"],
        )
        with PadlockClient(options) as padlock:
            # The service's own database: only envelopes, never a key.
            database = {}
            for user, record in (("alice", {"email": "alice@example.com"}), ("bob", {"email": "bob@example.com"})):
                padlock.create_keychain(user)
                database[user] = base64.b64encode(padlock.encrypt(user, "profile", json.dumps(record))).decode()
            print("stored:", {user: row[:40] + "..." for user, row in database.items()})

            receipt = padlock.shred_keychain("alice")  # account deletion; nothing touches the database
            print("shredded alice; receipt verifies for", padlock.verify_receipt(receipt.receipt_jws).sub)

            def load(user: str) -> str:
                try:
                    return padlock.decrypt_text(user, base64.b64decode(database[user]))
                except KeychainShredded:
                    return "<deleted: keys shredded>"

            alice, bob = load("alice"), load("bob")
            print("alice:", alice, "\nbob:  ", bob)
            sys.exit(0 if alice.startswith("<deleted") and "bob@example.com" in bob else 1)
    finally:
        server.terminate()
        server.wait()
