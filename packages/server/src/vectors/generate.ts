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
import { credentialMacFields, serviceMacFields } from '../service-rows.js';

export type RowVectorRow =
  | {
      readonly kind: 'service';
      readonly serviceId: string;
      readonly wrappedKey: string;
      readonly read: string[];
      readonly create: boolean;
      readonly rotate: boolean;
      readonly shred: boolean;
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
  return serviceMacFields({
    serviceId: row.serviceId,
    wrappedKey: Buffer.from(row.wrappedKey, 'hex'),
    permissions: { read: row.read, create: row.create, rotate: row.rotate, shred: row.shred, hold: false },
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
