import { entryHash, GENESIS, type AuditEntry } from './audit.js';
import { CHECKPOINT_TYP, verifySigned, type JsonWebKeySet } from './receipts.js';
import type { AuditRow, KeyStore } from './store/types.js';

/*
 * Reading the audit log back: `padlock audit verify` walks every chain from
 * its first entry, recomputing each hash and checking each link, then checks
 * each chain's signed checkpoints against the entries. The first problem
 * found is named (chain, seq, what); nothing after it is trusted.
 */

export type AuditProblem =
  /** The entry's body does not hash to its stored hash, or is not an entry. */
  | 'edited'
  /** No entry with this seq, though later ones exist (or a checkpoint names it). */
  | 'removed'
  /** The row at this seq holds another entry's body (another seq or chain). */
  | 'reordered'
  /** The entry does not hold the previous entry's hash: that one was rewritten (hash recomputed) or replaced. */
  | 'relinked'
  /** A checkpoint that does not verify, or whose hash differs from the entry it names. */
  | 'bad-checkpoint';

export interface AuditFinding {
  readonly chain: string;
  readonly seq: number;
  readonly problem: AuditProblem;
  readonly detail: string;
}

export interface AuditReport {
  readonly ok: boolean;
  readonly chains: number;
  readonly entries: number;
  readonly checkpoints: number;
  /** The first problem found, chains in id order, entries by seq. */
  readonly first?: AuditFinding;
}

type AuditReader = Pick<KeyStore, 'listAuditChains' | 'readAuditChain' | 'listAuditCheckpoints'>;

function decode(row: AuditRow): AuditEntry | undefined {
  try {
    const entry = JSON.parse(row.body) as Partial<AuditEntry> | null;
    if (
      entry === null ||
      typeof entry !== 'object' ||
      entry.v !== 1 ||
      typeof entry.chain !== 'string' ||
      typeof entry.seq !== 'number' ||
      typeof entry.prev !== 'string' ||
      typeof entry.at !== 'number' ||
      typeof entry.event !== 'object'
    )
      return undefined;
    return entry as AuditEntry;
  } catch {
    return undefined;
  }
}

/** Checks one chain's rows (as read, by seq) and returns its first problem. */
export function verifyChain(chain: string, rows: readonly AuditRow[]): AuditFinding | undefined {
  let prev = GENESIS;
  let expected = 1;
  for (const row of rows) {
    const at = (problem: AuditProblem, detail: string): AuditFinding => ({ chain, seq: row.seq, problem, detail });
    if (row.seq > expected) {
      return { chain, seq: expected, problem: 'removed', detail: `entry ${expected} is missing (next is ${row.seq})` };
    }
    const entry = decode(row);
    if (entry === undefined || entryHash(row.body) !== row.hash)
      return at('edited', 'its body does not match its hash');
    if (entry.chain !== chain || entry.seq !== row.seq) {
      return at('reordered', `the row holds entry ${entry.seq} of chain ${entry.chain}`);
    }
    if (entry.prev !== prev) {
      return row.seq === 1
        ? at('relinked', 'the first entry does not start from the genesis hash')
        : { chain, seq: row.seq - 1, problem: 'edited', detail: `entry ${row.seq} does not link to it` };
    }
    prev = row.hash;
    expected = row.seq + 1;
  }
  return undefined;
}

/** Walks every chain and its checkpoints; `jwks` verifies the checkpoints. */
export async function verifyAudit(store: AuditReader, jwks: JsonWebKeySet): Promise<AuditReport> {
  const chains = await store.listAuditChains();
  let entries = 0;
  let checkpoints = 0;
  for (const chain of chains) {
    const rows = await store.readAuditChain(chain);
    entries += rows.length;
    const broken = verifyChain(chain, rows);
    const marks = await store.listAuditCheckpoints(chain);
    checkpoints += marks.length;
    let checkpointFinding: AuditFinding | undefined;
    const bySeq = new Map(rows.map((r) => [r.seq, r]));
    for (const mark of marks) {
      const bad = (problem: AuditProblem, detail: string, seq = mark.seq): AuditFinding => ({
        chain,
        seq,
        problem,
        detail,
      });
      let head: { chain?: unknown; seq?: unknown; hash?: unknown } | null;
      try {
        head = (await verifySigned(mark.jws, jwks, CHECKPOINT_TYP)) as typeof head;
      } catch (error) {
        checkpointFinding = bad('bad-checkpoint', `checkpoint at ${mark.seq}: ${(error as Error).message}`);
        break;
      }
      if (head === null || head.chain !== chain || head.seq !== mark.seq) {
        checkpointFinding = bad('bad-checkpoint', `checkpoint stored at ${mark.seq} signs another head`);
        break;
      }
      const row = bySeq.get(mark.seq);
      if (row === undefined) {
        checkpointFinding = bad('removed', `entry ${mark.seq}, signed in a checkpoint, is missing`);
        break;
      }
      if (row.hash !== head.hash) {
        checkpointFinding = bad('edited', `entry ${mark.seq} differs from the one its checkpoint signed`);
        break;
      }
    }
    // The earlier of the two names the first entry that went wrong.
    const first = [broken, checkpointFinding]
      .filter((f): f is AuditFinding => f !== undefined)
      .sort((a, b) => a.seq - b.seq)[0];
    if (first !== undefined) return { ok: false, chains: chains.length, entries, checkpoints, first };
  }
  return { ok: true, chains: chains.length, entries, checkpoints };
}

/** Every entry at or after `since` (ms), in time order, then chain and seq; bodies as stored. */
export async function exportAudit(store: AuditReader, since: number): Promise<AuditRow[]> {
  const out: AuditRow[] = [];
  for (const chain of await store.listAuditChains()) {
    for (const row of await store.readAuditChain(chain)) if (row.at >= since) out.push(row);
  }
  return out.sort(
    (a, b) => a.at - b.at || (a.chainId < b.chainId ? -1 : a.chainId > b.chainId ? 1 : 0) || a.seq - b.seq,
  );
}
