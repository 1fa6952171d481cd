"""Test helper: real Padlock processes (`padlock serve`, the CLI operators run) sharing one SQLite
store in a temp directory, with a KEK file and services made by `padlock service create`.
Needs `npm run build` at the repository root first."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / "packages" / "cli" / "dist" / "main.js"
CATEGORIES = ("profile", "payments", "advertising")


def vectors_file(*parts: str) -> Path:
    return ROOT.joinpath(*parts)


def wycheproof_file(name: str) -> Path:
    """../shared/vectors/wycheproof beside the repository root, as CI provides (and the TypeScript tests read)."""
    base = os.environ.get("PADLOCK_WYCHEPROOF_DIR")
    directory = Path(base) if base else ROOT.parent / "shared" / "vectors" / "wycheproof"
    path = directory / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Wycheproof vectors missing at {path}: CI must provide them there (or set PADLOCK_WYCHEPROOF_DIR)"
        )
    return path


@dataclass
class PadlockProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Deployment:
    max_staleness_seconds: int = 2
    max_batch: int = 500
    #: The servers' config.listen.tls: they serve HTTPS, and their URLs are https://127.0.0.1:<port>.
    tls: dict[str, object] | None = None
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="padlock-py-test-")))
    credentials: dict[str, str] = field(default_factory=dict)
    processes: list[PadlockProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not CLI.is_file():
            raise FileNotFoundError(f"{CLI} is missing: run `npm run build` at the repository root first")
        kek = self.dir / "kek.bin"
        kek.write_bytes(secrets.token_bytes(32))
        kek.chmod(0o600)
        config = {
            "listen": {"host": "127.0.0.1", "port": 0, **({} if self.tls is None else {"tls": self.tls})},
            "categories": list(CATEGORIES),
            "keks": {"active": "test-kek", "files": [{"kid": "test-kek", "path": "kek.bin"}]},
            "store": {"kind": "sqlite", "sqlite": {"path": "padlock.db", "busyTimeoutMs": 5000}},
            "maxStalenessSeconds": self.max_staleness_seconds,
            "limits": {"maxBatch": self.max_batch, "deadlineMs": 5000},
            "services": {"refreshSeconds": 1},
            "drainTimeoutMs": 1000,
            "log": {"level": "info", "requests": False},
        }
        self.config_file = self.dir / "padlock.json"
        self.config_file.write_text(json.dumps(config))
        self.config_file.chmod(0o600)
        for service, rights in (
            ("app", ["--read", ",".join(CATEGORIES), "--create", "--rotate", "--shred", "--hold"]),
            ("reader", ["--read", "profile"]),
        ):
            out = self.cli("service", "create", service, *rights)
            self.credentials[service] = json.loads(out)["credential"]

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["node", str(CLI), *args, "-c", str(self.config_file)],
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"padlock {' '.join(args)} exited with {done.returncode}: {done.stderr.decode()}")
        return done.stdout.decode()

    def start(self, name: str) -> PadlockProcess:
        process = subprocess.Popen(
            ["node", str(CLI), "serve", "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        port: int | None = None
        timer = threading.Timer(30, process.kill)
        timer.start()
        try:
            for line in process.stdout:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "padlock listening" and isinstance(entry.get("port"), int):
                    port = entry["port"]
                    break
        finally:
            timer.cancel()
        if port is None:
            process.kill()
            raise RuntimeError(f"padlock serve ({name}) exited before listening")
        # Keep reading the log so the pipe never fills and blocks the server.
        threading.Thread(target=lambda: shutil.copyfileobj(process.stdout, open(os.devnull, "wb")), daemon=True).start()  # type: ignore[arg-type]
        scheme = "http" if self.tls is None else "https"
        started = PadlockProcess(name, f"{scheme}://127.0.0.1:{port}", process)
        self.processes.append(started)
        return started

    def close(self) -> None:
        for p in self.processes:
            p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def batch_get_count(padlock: PadlockProcess) -> int:
    """Batch-get requests a process has answered, by its own /metrics."""
    import urllib.request

    total = 0
    with urllib.request.urlopen(f"{padlock.url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("padlock_http_requests_total{") and 'route="/v1/keys/batch-get"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def make_pki(directory: Path) -> dict[str, str]:
    """Test certificates from the repository's one helper (scripts/testing/certs.mjs, openssl CLI):
    a CA, a server certificate for 127.0.0.1, an unrelated CA, and a client certificate with the URI
    SAN spiffe://test/app issued by a clients' CA. Returns file paths."""
    script = f"""
import {{ makeTestPki, makeCa, issue }} from {json.dumps(str(ROOT / "scripts" / "testing" / "certs.mjs"))};
const dir = {json.dumps(str(directory))};
const pki = makeTestPki(dir);
const clientsCa = makeCa(dir, 'clients');
const app = issue(dir, clientsCa, 'app', {{ client: true, sans: ['URI:spiffe://test/app'] }});
console.log(JSON.stringify({{ ca: pki.ca.cert, serverCert: pki.server.cert, serverKey: pki.server.key,
  otherCa: pki.otherCa.cert, clientsCa: clientsCa.cert, appCert: app.cert, appKey: app.key }}));
"""
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True
    )
    files: dict[str, str] = json.loads(done.stdout)
    return files
