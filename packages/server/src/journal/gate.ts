import { PadlockError } from '@padlock/core';
import type { Logger } from '../log.js';
import type { KeyStore } from '../store/types.js';
import type { JournalEntry, ShredRequest } from './entry.js';
import { aheadOfJournal, raiseApplied, replayJournal, type ReplayResult } from './replay.js';
import type { ShredJournal } from './types.js';

/*
 * Keeps a server from serving keys out of a store that is behind the shred
 * journal (DESIGN.md section 11). Closed when:
 * - at start, the store's applied position is below the journal's head (a
 *   restored backup, or shreds that reached the journal only);
 * - later, the applied position goes down (the store was restored under a
 *   running server);
 * - the journal does not verify, or the store is ahead of it.
 * While closed, every key-serving call throws STORE_BEHIND_JOURNAL (or
 * JOURNAL_CORRUPT) and /readyz says why. It opens again once the store has
 * applied the head it was found behind: after `padlock journal replay`, or at
 * once when `journal.replay` is "auto", the default: replay only ever shreds,
 * so running it without waiting for a person cannot lose anything they would
 * keep, while waiting turns every lookup into a 503.
 *
 * Live shreds: append, then shred the store, then move the applied position
 * from position-1 to position by compare-and-set. Concurrent shreds from
 * several servers may leave it lagging (never leading): harmless, the next
 * check replays the lag in the background without closing.
 */

export type ReplayMode = 'auto' | 'manual';

type State =
  | { readonly kind: 'open' }
  | { readonly kind: 'behind'; readonly applied: number; readonly target: number; readonly why: string }
  | { readonly kind: 'corrupt'; readonly message: string };

export class JournalGate {
  #state: State = { kind: 'open' };
  #lastApplied = 0;
  #headAtLastCheck = 0;
  #timer: NodeJS.Timeout | undefined;
  #replaying: Promise<unknown> | undefined;
  #checking = false;

  constructor(
    readonly journal: ShredJournal,
    private readonly store: KeyStore,
    private readonly log: Logger,
    private readonly options: {
      readonly replay: ReplayMode;
      readonly checkIntervalMs: number;
      /** Drops a user's cached keychain after a replayed shred. */
      readonly invalidate?: (userId: string) => Promise<void>;
    },
  ) {}

  /** The start-up step: checks, replays when behind and the mode is "auto", then checks every interval. */
  async start(): Promise<void> {
    await this.check(true);
    if (this.#state.kind === 'behind' && this.options.replay === 'auto') await this.replay();
    this.#timer = setInterval(() => void this.check(false), this.options.checkIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  get open(): boolean {
    return this.#state.kind === 'open';
  }

  /** Throws unless keys may be served. */
  assertOpen(): void {
    const state = this.#state;
    if (state.kind === 'behind') throw new PadlockError('STORE_BEHIND_JOURNAL');
    if (state.kind === 'corrupt') throw new PadlockError('JOURNAL_CORRUPT');
  }

  /** What /readyz shows. */
  status(): string {
    const state = this.#state;
    if (state.kind === 'open') return 'ok';
    if (state.kind === 'corrupt') return `corrupt: ${state.message}`;
    return (
      `behind: the store has applied shred journal position ${state.applied} of ${state.target} (${state.why}); ` +
      (this.options.replay === 'auto' ? 'replaying' : 'run `padlock journal replay`')
    );
  }

  /** Appends a shred to the journal; the caller shreds the store after, then calls applied(). */
  append(shred: ShredRequest): Promise<JournalEntry> {
    return this.journal.append(shred);
  }

  /** After the store shred of `entry`: moves the applied position on if this was the next entry. */
  async applied(entry: JournalEntry): Promise<void> {
    if (await this.store.advanceJournal(entry.position - 1, entry.position)) {
      this.#lastApplied = Math.max(this.#lastApplied, entry.position);
    }
  }

  /** Replays now (in this process), then checks again. */
  async replay(): Promise<ReplayResult | undefined> {
    if (this.#replaying !== undefined) {
      await this.#replaying;
      return undefined;
    }
    const run = replayJournal(this.journal, this.store, {
      ...(this.options.invalidate === undefined ? {} : { onEntry: this.options.invalidate }),
    });
    this.#replaying = run;
    try {
      const result = await run;
      this.log.info('shred journal replayed', { ...result });
      return result;
    } catch (error) {
      // A corrupt journal needs a person; anything else (the store timed out) is tried again at the next check.
      if (error instanceof PadlockError && error.code === 'JOURNAL_CORRUPT')
        this.#close({ kind: 'corrupt', message: error.message });
      this.log.error('shred journal replay failed', { error: error instanceof Error ? error.message : String(error) });
      return undefined;
    } finally {
      this.#replaying = undefined;
      await this.check(false);
    }
  }

  /** Compares the store's applied position with the journal's head; see the comment above. */
  async check(atStart: boolean): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      // What this process knew applied BEFORE the read: a live shred's compare-and-set may land while
      // the read is on its way (hundreds of ms when a node is down), and a read that began before it
      // rightly returns the position under it. Compared with the position known after the read, that
      // looked like a store restored under the server, and shut key serving for a replay (DiRT
      // schedules-node-group-kill: 695 lookups answered 503 STORE_BEHIND_JOURNAL by the surviving group).
      const knownApplied = this.#lastApplied;
      const applied = await this.store.journalApplied();
      const head = (await this.journal.head()).position;
      const state = this.#state;
      if (applied > head) {
        this.#close({ kind: 'corrupt', message: aheadOfJournal(applied, head).message });
      } else if (atStart && applied < head) {
        this.#close({ kind: 'behind', applied, target: head, why: 'found at start' });
      } else if (applied < knownApplied) {
        this.#close({
          kind: 'behind',
          applied,
          target: head,
          why: `its applied position went down from ${knownApplied}: restored under a running server?`,
        });
      } else if (state.kind === 'behind' && applied < state.target) {
        this.#state = { ...state, applied };
      } else if (state.kind === 'corrupt' && applied < head) {
        // Stays closed until a replay succeeds.
      } else {
        if (state.kind !== 'open') this.log.info('store caught up with the shred journal', { applied, head });
        this.#state = { kind: 'open' };
        // Entries already there at the previous check and still not applied: a lagging position
        // (concurrent shreds) or a store shred that failed after its append. Replay them quietly.
        if (applied < this.#headAtLastCheck && this.options.replay === 'auto' && this.#replaying === undefined) {
          void this.replay();
        }
      }
      this.#lastApplied = Math.max(this.#lastApplied, applied);
      this.#headAtLastCheck = head;
      if (
        this.#state.kind === 'behind' &&
        !atStart &&
        this.options.replay === 'auto' &&
        this.#replaying === undefined
      ) {
        void this.replay();
      }
    } catch (error) {
      if (error instanceof PadlockError && error.code === 'JOURNAL_CORRUPT') {
        this.#close({ kind: 'corrupt', message: error.message });
      } else {
        this.log.warn('shred journal check failed', { error: error instanceof Error ? error.message : String(error) });
      }
    } finally {
      this.#checking = false;
    }
  }

  #close(state: State): void {
    if (this.#state.kind === 'open') {
      this.log.warn('not serving keys: store behind the shred journal', {
        status: 'closed',
        why:
          state.kind === 'behind'
            ? `applied ${state.applied} of ${state.target}: ${state.why}`
            : state.kind === 'corrupt'
              ? state.message
              : 'open',
      });
    }
    this.#state = state;
  }
}

export { raiseApplied };
