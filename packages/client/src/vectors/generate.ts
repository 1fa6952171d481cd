/*
 * Rewrites packages/client/vectors/envelope.json. After `npm run build`:
 *
 *   node packages/client/dist/vectors/generate.js
 *
 * A rerun writes identical bytes; a diff means the envelope format changed,
 * which needs a new format byte, not new vectors.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { envelopeVectors } from './envelope-vectors.js';

const path = fileURLToPath(new URL('../../vectors/envelope.json', import.meta.url));
const content = envelopeVectors();
writeFileSync(path, JSON.stringify(content, null, 2) + '\n');
console.log(`wrote ${path} (${content.vectors.length} vectors, ${content.invalid.length} invalid)`);
