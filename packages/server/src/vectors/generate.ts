/*
 * Rewrites packages/server/vectors/row-mac.json (docs/spec.md, "Row MAC").
 * Run after `npm run build`:
 *
 *   node packages/server/dist/vectors/generate.js
 *
 * Every input is SHA-256 of a fixed label, so a rerun writes the same bytes;
 * a diff after a rerun means the encoding or the MAC changed.
 */
import { hkdfSha256, SecretBytes } from '@padlock/core';
import { hash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeRow, macRow, ROW_MAC_LABEL } from '../row-mac.js';
import { holdMacFields, scheduleMacFields } from '../lifecycle-rows.js';
import { credentialMacFields, serviceMacFields } from '../service-rows.js';
import type { ScheduleState } from '../store/types.js';

export type RowVectorRow =
  | {
      readonly kind: 'service';
      readonly serviceId: string;
      readonly wrappedKey: string;
      readonly read: string[];
      readonly create: boolean;
      readonly rotate: boolean;
      readonly shred: boolean;
      /** Absent: false (rows from before the hold right). */
      readonly hold?: boolean;
      readonly createdAt: number;
      readonly tlsIdentities: string[];
      readonly generation: number;
      readonly credentialStates: { credentialId: string; revokedAt: number | null }[];
    }
  | {
      readonly kind: 'credential';
      readonly serviceId: string;
      readonly credentialId: string;
      readonly verifier: string;
      readonly createdAt: number;
      readonly revokedAt: number | null;
    }
  | {
      readonly kind: 'hold';
      readonly holdId: string;
      readonly userId: string;
      readonly category: string | null;
      readonly reason: string;
      readonly placedBy: string;
      readonly placedAt: number;
      readonly releasedAt: number | null;
      readonly releasedBy: string | null;
    }
  | {
      readonly kind: 'schedule';
      readonly scheduleId: string;
      readonly userId: string;
      readonly category: string | null;
      readonly executeAt: number;
      readonly serveDuringGrace: boolean;
      readonly requestedBy: string;
      readonly createdAt: number;
      readonly state: ScheduleState;
      readonly finishedAt: number | null;
      readonly finishedBy: string | null;
    };

export interface RowMacVector {
  readonly name: string;
  readonly kid: string;
  readonly kek: string;
  readonly macKey: string;
  readonly row: RowVectorRow;
  readonly message: string;
  readonly mac: string;
}

const seeded = (label: string, length = 32): string =>
  hash('sha256', `padlock row-mac vector ${label}`, 'buffer').subarray(0, length).toString('hex');

/** The MAC fields of a vector's row, as the server builds them. */
export function vectorFields(row: RowVectorRow): ReturnType<typeof serviceMacFields> {
  if (row.kind === 'credential') {
    return credentialMacFields(row.serviceId, { ...row, verifier: Buffer.from(row.verifier, 'hex') });
  }
  if (row.kind === 'hold') return holdMacFields(row);
  if (row.kind === 'schedule') return scheduleMacFields(row);
  return serviceMacFields({
    serviceId: row.serviceId,
    wrappedKey: Buffer.from(row.wrappedKey, 'hex'),
    permissions: { read: row.read, create: row.create, rotate: row.rotate, shred: row.shred, hold: row.hold ?? false },
    createdAt: row.createdAt,
    tlsIdentities: row.tlsIdentities,
    generation: row.generation,
    credentialStates: row.credentialStates,
    mac: null,
  });
}

const ROWS: { name: string; kid: string; row: RowVectorRow }[] = [
  {
    name: 'service with credentials and TLS identities',
    kid: 'k1',
    row: {
      kind: 'service',
      serviceId: 'newsletter',
      wrappedKey: seeded('wrapped', 32) + seeded('wrapped 2', 32),
      read: ['profile', 'payments'],
      create: true,
      rotate: false,
      shred: false,
      createdAt: 1_764_806_400_000,
      tlsIdentities: ['spiffe://example.org/ns/a/sa/newsletter', 'CN=newsletter,O=Example'],
      generation: 4,
      credentialStates: [
        { credentialId: '0123456789abcdef', revokedAt: null },
        { credentialId: 'fedcba9876543210', revokedAt: 1_764_810_000_000 },
      ],
    },
  },
  {
    name: 'service with nothing: no rights, identities or credentials',
    kid: 'kek-2026.a_b',
    row: {
      kind: 'service',
      serviceId: 'ab',
      wrappedKey: seeded('wrapped empty', 32),
      read: [],
      create: false,
      rotate: false,
      shred: false,
      createdAt: 0,
      tlsIdentities: [],
      generation: 1,
      credentialStates: [],
    },
  },
  {
    name: 'live credential',
    kid: 'k1',
    row: {
      kind: 'credential',
      serviceId: 'newsletter',
      credentialId: '0123456789abcdef',
      verifier: seeded('verifier live'),
      createdAt: 1_764_806_400_001,
      revokedAt: null,
    },
  },
  {
    name: 'revoked credential',
    kid: 'k1',
    row: {
      kind: 'credential',
      serviceId: 'newsletter',
      credentialId: 'fedcba9876543210',
      verifier: seeded('verifier revoked'),
      createdAt: 1_764_806_400_002,
      revokedAt: 1_764_810_000_000,
    },
  },
  {
    name: 'service with the hold right',
    kid: 'k1',
    row: {
      kind: 'service',
      serviceId: 'legal',
      wrappedKey: seeded('wrapped legal', 32),
      read: [],
      create: false,
      rotate: false,
      shred: false,
      hold: true,
      createdAt: 1_764_806_400_003,
      tlsIdentities: [],
      generation: 1,
      credentialStates: [{ credentialId: '00112233445566ff', revokedAt: null }],
    },
  },
  {
    name: 'hold on a category, in force',
    kid: 'k1',
    row: {
      kind: 'hold',
      holdId: 'hold-6f1c2a9e-0b4d-4c3e-8a71-5d2e9f8b7c10',
      userId: 'u-1842',
      category: 'payments',
      reason: 'litigation 2026-114',
      placedBy: 'legal',
      placedAt: 1_764_806_400_004,
      releasedAt: null,
      releasedBy: null,
    },
  },
  {
    name: 'hold on a keychain, released',
    kid: 'k1',
    row: {
      kind: 'hold',
      holdId: 'hold-00000000-0000-4000-8000-000000000001',
      userId: 'u-77',
      category: null,
      reason: 'régulateur: enquête 7',
      placedBy: 'operator:alice',
      placedAt: 1_764_806_400_005,
      releasedAt: 1_764_900_000_000,
      releasedBy: 'legal',
    },
  },
  {
    name: 'schedule of a keychain, pending, keys withheld',
    kid: 'k1',
    row: {
      kind: 'schedule',
      scheduleId: 'sched-2b0f8d4e-6c1a-4f0e-9d55-1b7d6a3c9e01',
      userId: 'u-1842',
      category: null,
      executeAt: 1_767_398_400_000,
      serveDuringGrace: false,
      requestedBy: 'accounts',
      createdAt: 1_764_806_400_006,
      state: 'pending',
      finishedAt: null,
      finishedBy: null,
    },
  },
  {
    name: 'schedule of a category, executed',
    kid: 'kek-2026.a_b',
    row: {
      kind: 'schedule',
      scheduleId: 'sched-00000000-0000-4000-8000-000000000002',
      userId: 'u-77',
      category: 'advertising',
      executeAt: 1_764_806_500_000,
      serveDuringGrace: true,
      requestedBy: 'accounts',
      createdAt: 1_764_806_400_007,
      state: 'executed',
      finishedAt: 1_764_806_500_812,
      finishedBy: 'padlock-1:4242:9f8e7d6c',
    },
  },
];

export function generateRowMacVectors(): RowMacVector[] {
  return ROWS.map(({ name, kid, row }) => {
    const kek = seeded(`kek ${kid}`);
    const key = SecretBytes.copyOf(Buffer.from(kek, 'hex'));
    const macKey = hkdfSha256(key.expose(), Buffer.alloc(0), Buffer.from(ROW_MAC_LABEL), 32).toString('hex');
    const fields = vectorFields(row);
    return {
      name,
      kid,
      kek,
      macKey,
      row,
      message: encodeRow(fields).toString('hex'),
      mac: macRow({ kid, key }, fields).toString('hex'),
    };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = fileURLToPath(new URL('../../vectors/row-mac.json', import.meta.url));
  const document = {
    description:
      'Row MACs (docs/spec.md, "Row MAC"): macKey = HKDF-SHA256(kek, empty salt, "padlock/v1/row-mac", 32); ' +
      'message = encode(fields of row); mac = 01 || u8(len kid) || kid || HMAC-SHA256(macKey, message). Hex byte strings.',
    vectors: generateRowMacVectors(),
  };
  writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}
