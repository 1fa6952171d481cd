"""Both ways with the TypeScript SDK (packages/client/dist) on one real server: what either
encrypts the other decrypts, and a flipped byte fails in both."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from padlock_client import DecryptionFailed, EndpointGroup, PadlockClient, PadlockClientOptions

from .padlock_processes import ROOT, Deployment, PadlockProcess

SCRIPT = """
import { PadlockClient } from %s;
const [url, credential, userId, pythonEnvelope, flipped] = process.argv.slice(1);
const padlock = new PadlockClient({ groups: [{ name: 'p', urls: [url] }], credential, timeoutMs: 10000 });
const out = {
  fromTs: (await padlock.encrypt(userId, 'payments', 'written by TypeScript')).toString('base64'),
  pythonText: await padlock.decryptText(userId, Buffer.from(pythonEnvelope, 'base64')),
};
try { await padlock.decrypt(userId, Buffer.from(flipped, 'base64')); out.flipped = 'opened'; }
catch (e) { out.flipped = e.code; }
await padlock.close();
console.log(JSON.stringify(out));
"""


def test_envelopes_cross_between_the_sdks(deployment: Deployment, primary: PadlockProcess) -> None:
    credential = deployment.credentials["app"]
    options = PadlockClientOptions(groups=(EndpointGroup("p", (primary.url,)),), credential=credential)
    with PadlockClient(options) as padlock:
        padlock.create_keychain("cross-sdk")
        sealed = padlock.encrypt("cross-sdk", "payments", "written by Python")
        flipped = bytearray(sealed)
        flipped[len(flipped) // 2] ^= 0x04
        sdk = json.dumps(str(ROOT / "packages" / "client" / "dist" / "index.js"))
        done = subprocess.run(
            ["node", "--input-type=module", "-e", SCRIPT % sdk, "--", primary.url, credential, "cross-sdk",
             base64.b64encode(sealed).decode(), base64.b64encode(bytes(flipped)).decode()],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["pythonText"] == "written by Python"
        assert answer["flipped"] == "DECRYPTION_FAILED"
        assert padlock.decrypt_text("cross-sdk", base64.b64decode(answer["fromTs"])) == "written by TypeScript"
        with pytest.raises(DecryptionFailed):
            padlock.decrypt("cross-sdk", bytes(flipped))
