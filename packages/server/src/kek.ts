import { kekRing, SecretBytes, type Kek, type KekRing } from '@padlock/core';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ConfigError, type PadlockConfig } from './config.js';

/*
 * KEKs are loaded from files of exactly 32 raw bytes, readable by the owner
 * only (mode 0600 or 0400). Never from an environment variable, and never as
 * text, so no string copy of a KEK lingers in the heap. This is the one place
 * to plug in a KMS or PKCS#11 later.
 */

const KEK_LENGTH = 32;

export function loadKek(kid: string, path: string): Kek {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new ConfigError(`cannot open KEK file for kid "${kid}" at ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  try {
    const stat = fstatSync(fd);
    if ((stat.mode & 0o077) !== 0) {
      throw new ConfigError(
        `KEK file for kid "${kid}" at ${path} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
    if (stat.size !== KEK_LENGTH) {
      throw new ConfigError(`KEK file for kid "${kid}" at ${path} must hold exactly ${KEK_LENGTH} bytes`);
    }
    const bytes = Buffer.alloc(KEK_LENGTH);
    if (readSync(fd, bytes, 0, KEK_LENGTH, 0) !== KEK_LENGTH) {
      bytes.fill(0);
      throw new ConfigError(`KEK file for kid "${kid}" at ${path} could not be read whole`);
    }
    return { kid, key: SecretBytes.adopt(bytes) };
  } finally {
    closeSync(fd);
  }
}

export function loadKeks(config: PadlockConfig): KekRing {
  return kekRing(
    config.keks.files.map((f) => loadKek(f.kid, f.path)),
    config.keks.active,
  );
}
