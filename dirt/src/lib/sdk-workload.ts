import { KeychainShredded, PadlockClientError, type PadlockClient } from '@padlock/client';
import { now, type Operation, type OpResult } from './load.js';
import type { KeyOracle } from './oracle.js';
import { Pool } from './workload.js';

/*
 * The key workload through the client SDK, as a service would use Padlock:
 * the SDK batches lookups, fails over between deployment groups and never
 * retries unless asked. An operation fails when the SDK throws anything the
 * caller would have to handle as an outage.
 */

export interface SdkMix {
  readonly read: number;
  readonly create: number;
  readonly shred: number;
}

function errorLabel(error: unknown): string {
  if (error instanceof PadlockClientError) return `${error.name}`;
  return error instanceof Error ? error.name : 'EXCEPTION';
}

export class SdkWorkload {
  readonly readable: Pool;
  readonly shreddable = new Pool();
  readonly problems: string[] = [];
  #created = 0;

  constructor(
    private readonly client: PadlockClient,
    private readonly oracle: KeyOracle,
    baseUsers: readonly string[],
    private readonly mix: SdkMix,
    private readonly userPrefix: string,
  ) {
    this.readable = new Pool(baseUsers);
  }

  next(): Operation {
    let x = Math.random() * (this.mix.read + this.mix.create + this.mix.shred);
    if ((x -= this.mix.create) < 0) return this.create();
    if ((x -= this.mix.shred) < 0 && this.shreddable.size > 0) return this.shred();
    return this.read();
  }

  read(userId = this.readable.pick()): Operation {
    return {
      kind: 'read',
      run: async (): Promise<OpResult> => {
        if (userId === undefined) return { label: 'NO_USER', outcome: 'failed', answered: false };
        try {
          const view = await this.client.getKeys(userId);
          let wrong = false;
          let keys = 0;
          for (const category of view.categories) {
            for (const { version, key } of category.keys) {
              const text = key.expose().toString('base64url');
              key.wipe();
              keys++;
              if (!this.oracle.check(userId, { category: category.category, version, key: text })) wrong = true;
            }
          }
          if (keys === 0) return { label: 'ok (no keys)', outcome: 'failed', answered: true };
          return { label: 'ok', outcome: wrong ? 'wrong' : 'ok', answered: true };
        } catch (error) {
          if (error instanceof KeychainShredded && this.oracle.state(userId).shredSentAt !== undefined) {
            return { label: 'KeychainShredded', outcome: 'ok', answered: true };
          }
          this.#problem(`read ${userId}: ${String(error)}`);
          return {
            label: errorLabel(error),
            outcome: 'failed',
            answered: error instanceof PadlockClientError && error.code !== 'UNAVAILABLE',
          };
        }
      },
    };
  }

  create(): Operation {
    const userId = `${this.userPrefix}${this.#created++}`;
    return {
      kind: 'create',
      run: async (): Promise<OpResult> => {
        try {
          await this.client.createKeychain(userId);
          this.oracle.state(userId).created = true;
          this.readable.add(userId);
          this.shreddable.add(userId);
          return { label: 'ok', outcome: 'ok', answered: true };
        } catch (error) {
          this.#problem(`create ${userId}: ${String(error)}`);
          return { label: errorLabel(error), outcome: 'failed', answered: false };
        }
      },
    };
  }

  shred(): Operation {
    const userId = this.shreddable.pick()!;
    this.shreddable.delete(userId);
    this.readable.delete(userId);
    this.oracle.state(userId).shredSentAt = now();
    return {
      kind: 'shred',
      run: async (): Promise<OpResult> => {
        try {
          await this.client.shredKeychain(userId);
          this.oracle.state(userId).shredAckAt = now();
          return { label: 'ok', outcome: 'ok', answered: true };
        } catch (error) {
          this.#problem(`shred ${userId}: ${String(error)}`);
          return { label: errorLabel(error), outcome: 'failed', answered: false };
        }
      },
    };
  }

  #problem(text: string): void {
    if (this.problems.length < 20) this.problems.push(text);
  }
}
