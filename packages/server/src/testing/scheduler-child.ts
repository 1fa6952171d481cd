/*
 * A Padlock scheduler in a process of its own, for the kill -9 test
 * (lifecycle-crash.test.ts): it runs one pass over the configured store and
 * stops dead at a chosen step of an execution (after its claim, or after its
 * shred), saying so on stdout, until the test kills it with SIGKILL.
 *
 * env PADLOCK_CHILD_CONFIG: the parsed config as JSON; PADLOCK_CHILD_PAUSE: shred | finish | receipt
 * (after the store shred; after the receipt is stored).
 */
import type { PadlockConfig } from '../config.js';
import { loadKeks } from '../kek.js';
import { operatorLifecycle, Scheduler } from '../lifecycle.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { openStore } from '../store/open.js';
import type { KeyRow, ReceiptRecord } from '../store/types.js';
import { SlowStore } from './harness.js';

/** Stops forever at the chosen step, after saying so. */
class PausingStore extends SlowStore {
  override async shred(
    userId: string,
    category: string | undefined,
    at: number,
    known?: readonly KeyRow[],
  ): Promise<number> {
    const pause = process.env['PADLOCK_CHILD_PAUSE'];
    if (pause === 'shred') return halt('claimed');
    const shredded = await super.shred(userId, category, at, known);
    return pause === 'finish' ? halt('shredded') : shredded;
  }

  override async putReceipt(receipt: ReceiptRecord): Promise<void> {
    await super.putReceipt(receipt);
    if (process.env['PADLOCK_CHILD_PAUSE'] === 'receipt') await halt('receipted');
  }
}

function halt(step: string): Promise<never> {
  process.stdout.write(`${step}\n`);
  return new Promise(() => setInterval(() => undefined, 60000));
}

const config = JSON.parse(process.env['PADLOCK_CHILD_CONFIG'] ?? '') as PadlockConfig;
const log = createLogger('error', (line) => process.stderr.write(line));
const keks = loadKeks(config);
const store = new PausingStore(await openStore(config, log));
// The CLI's lifecycle (no cache; its own receipts and audit chain) over the pausing store.
const { keys, lifecycle } = await operatorLifecycle(store, keks, config.categories, log);
const scheduler = new Scheduler(store, lifecycle, keys, new Metrics(), log, { ...config.scheduler, nodeId: 'child' });
await scheduler.pass();
