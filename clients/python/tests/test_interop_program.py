"""The interop program (clients/python/interop) as the lead's driver runs it: a long-lived
process, JSON lines in and out, against a real padlock serve."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .padlock_processes import Deployment, PadlockProcess

HERE = Path(__file__).resolve().parents[1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Program:
    def __init__(self, env: dict[str, str]) -> None:
        # The tools run with this interpreter, as the script would with dist/venv/bin/python.
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "tools" / "interop.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **env},
        )

    def ask(self, request: dict[str, Any] | str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        line = request if isinstance(request, str) else json.dumps(request)
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def finish(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=10)
        self.process.stdout.close()
        return code


def test_the_script_is_executable_and_names_the_venv() -> None:
    for name in ("interop", "bench"):
        script = HERE / name
        assert os.access(script, os.X_OK)
        assert "dist/venv/bin/python" in script.read_text()


def test_interop_contract(deployment: Deployment, primary: PadlockProcess, mirror: PadlockProcess) -> None:
    program = Program(
        {
            "PADLOCK_INTEROP_URLS": "http://127.0.0.1:1," + primary.url,
            "PADLOCK_INTEROP_MIRROR_URLS": mirror.url,
            "PADLOCK_INTEROP_CREDENTIAL": deployment.credentials["app"],
            "PADLOCK_INTEROP_CACHE_MS": "1000",
        }
    )
    try:
        assert program.ask({"op": "create", "user": "interop-a"}) == {"ok": True}
        assert program.ask({"op": "create", "user": "interop-b"}) == {"ok": True}
        sealed = program.ask({"op": "encrypt", "user": "interop-a", "category": "profile", "data": b64(b"hello")})
        assert sealed["ok"] is True
        assert program.ask({"op": "decrypt", "user": "interop-a", "data": sealed["data"]}) == {
            "ok": True,
            "data": b64(b"hello"),
        }
        flipped = bytearray(base64.b64decode(sealed["data"]))
        flipped[-1] ^= 1
        answer = program.ask({"op": "decrypt", "user": "interop-a", "data": b64(bytes(flipped))})
        assert answer["ok"] is False and answer["code"] == "DECRYPTION_FAILED"
        other = program.ask({"op": "encrypt", "user": "interop-b", "category": "payments", "data": b64(b"card")})
        bulk = program.ask(
            {
                "op": "bulkDecrypt",
                "records": [
                    {"user": "interop-a", "data": sealed["data"]},
                    {"user": "interop-b", "data": other["data"]},
                    {"user": "interop-b", "data": sealed["data"]},
                ],
            }
        )
        assert bulk == {
            "ok": True,
            "results": [
                {"ok": True, "data": b64(b"hello")},
                {"ok": True, "data": b64(b"card")},
                {"ok": False, "code": "DECRYPTION_FAILED"},
            ],
        }
        shred = program.ask({"op": "shredCategory", "user": "interop-b", "category": "payments"})
        assert shred["ok"] is True and shred["receipt"].count(".") == 2
        assert program.ask({"op": "decrypt", "user": "interop-b", "data": other["data"]})["code"] == "KEYCHAIN_SHREDDED"
        assert program.ask({"op": "forget", "user": "interop-a"}) == {"ok": True}
        assert program.ask({"op": "shred", "user": "interop-a"})["ok"] is True
        assert (
            program.ask({"op": "decrypt", "user": "interop-a", "data": sealed["data"]})["code"] == "KEYCHAIN_SHREDDED"
        )
        assert (
            program.ask({"op": "encrypt", "user": "nobody-interop", "category": "profile", "data": ""})["code"]
            == "KEYCHAIN_NOT_FOUND"
        )
        # Malformed requests: an answer each, and the program goes on.
        for bad in (
            "not json",
            "[1]",
            '{"op":"nope"}',
            '{"op":"decrypt","user":"interop-a","data":"***"}',
            '{"op":"encrypt","user":"bad user","category":"profile","data":""}',
        ):
            answer = program.ask(bad)
            assert answer["ok"] is False and answer["code"] == "INVALID_INPUT" and answer["message"], bad
        assert program.ask({"op": "create", "user": "interop-c"}) == {"ok": True}
    finally:
        code = program.finish()
    assert code == 0
