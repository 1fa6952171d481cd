import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from './config.js';

/*
 * The Padlock configs shipped with the deployment files (deploy/systemd, deploy/k8s/overlays/*)
 * pass the server's own validation, so a misspelt or misplaced setting in them fails here, not
 * at a rollout. The manifests around them are checked by deploy/validate (scripts/deploy-test.sh).
 */

// This file runs as packages/server/dist/deploy-config.test.js: the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const OVERLAYS = join(ROOT, 'deploy/k8s/overlays');
const CONFIGS = [
  'deploy/systemd/padlock.json',
  ...readdirSync(OVERLAYS).map((group) => `deploy/k8s/overlays/${group}/padlock.json`),
];

describe('deployment configs', () => {
  it('include both groups of the Kubernetes manifests', () => {
    assert.ok(CONFIGS.includes('deploy/k8s/overlays/padlock/padlock.json'));
    assert.ok(CONFIGS.includes('deploy/k8s/overlays/padlock-mirror/padlock.json'));
  });

  for (const path of CONFIGS) {
    it(`${path} is a valid Padlock config`, () => {
      const raw = JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as Record<string, unknown>;
      const config = parseConfig(raw, '/');
      // Off loopback only with TLS: these configs listen on every address.
      assert.ok(config.listen.tls !== undefined, `${path} listens in plaintext`);
      // A misspelt key is an error, not a default: the check above can fail.
      assert.throws(() => parseConfig({ ...raw, maxStalenesSeconds: 30 }, '/'), /unknown setting "maxStalenesSeconds"/);
    });
  }
});
