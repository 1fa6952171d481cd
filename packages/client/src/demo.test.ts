import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/* The shred demo in examples/ runs end to end against a real Padlock, as its README says. */

const DEMO = fileURLToPath(new URL('../../../examples/shred-demo/demo.mjs', import.meta.url));

void describe('examples/shred-demo', { timeout: 60_000 }, () => {
  void it("shows alice's records unreadable after `padlock keychain shred alice`, bob's intact", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(process.execPath, [DEMO], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
        child.on('error', reject);
        child.on('close', (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
      },
    );
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /alice: \{"status":"deleted"\}/);
    assert.match(stdout, /bob: {3}\{"status":"ok","record":\{"name":"Bob Builder"/);
    assert.match(stdout, /OK: alice's records are unreadable, bob's are intact\./);
  });
});
