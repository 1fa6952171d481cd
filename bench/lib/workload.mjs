import { seededRandom, ZipfSampler } from './zipf.mjs';

/*
 * The requests a scenario sends, as ready-to-write HTTP/1.1 bytes. Users of
 * the read population are "u<index>", Zipf-distributed by rank; the mix's
 * shreds go to a separate preloaded population "d<index>", so a read never
 * meets a user the run itself shredded; its creates use ids no one else uses.
 *
 * Workload spec: { kind: 'get' | 'batch' | 'mix', users, zipfS, credential,
 *   batchSize?, createShare?, shredShare?, doomed?, tag? }
 */

export const userId = (index) => `u${index}`;
export const doomedId = (index) => `d${index}`;

function head(method, path, credential, body) {
  const auth = credential === undefined ? '' : `Authorization: Bearer ${credential}\r\n`;
  if (body === undefined) return `${method} ${path} HTTP/1.1\r\nHost: bench\r\n${auth}\r\n`;
  return (
    `${method} ${path} HTTP/1.1\r\nHost: bench\r\n${auth}` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/**
 * A request source for one load-generator process.
 * @param {object} spec the workload spec above
 * @param {number} stream this process's number (seeds and id ranges differ per process)
 * @param {number} streams how many processes share the workload
 * @returns {{ next(): { kind: string, bytes: Buffer } }}
 */
export function makeWorkload(spec, stream = 0, streams = 1) {
  const random = seededRandom(0x5eed + 7919 * stream + (spec.seed ?? 0));
  const zipf = new ZipfSampler(spec.users, spec.zipfS ?? 0.99, random);
  const credential = spec.credential;
  const get = () => ({ kind: 'get', bytes: Buffer.from(head('GET', `/v1/keys/${userId(zipf.next())}`, credential)) });
  switch (spec.kind) {
    case 'get':
      return { next: get };
    case 'batch': {
      const size = spec.batchSize ?? 100;
      return {
        next() {
          const ids = [];
          for (let i = 0; i < size; i++) ids.push(userId(zipf.next()));
          const body = JSON.stringify({ userIds: ids });
          return { kind: 'batch', bytes: Buffer.from(head('POST', '/v1/keys/batch-get', credential, body)) };
        },
      };
    }
    case 'mix': {
      const createShare = spec.createShare ?? 0.0005;
      const shredShare = spec.shredShare ?? 0.0005;
      const doomed = spec.doomed ?? 1;
      const tag = spec.tag ?? 'run';
      let creates = 0;
      let shreds = 0;
      return {
        next() {
          const u = random();
          if (u < createShare) {
            const body = JSON.stringify({ userId: `c-${tag}-${stream}-${creates++}` });
            return { kind: 'create', bytes: Buffer.from(head('POST', '/v1/keychains', credential, body)) };
          }
          if (u < createShare + shredShare) {
            const n = shreds++;
            const victim = doomedId((stream + n * streams) % doomed);
            // Alternate account deletion and an opt-out of one category.
            const path = n % 2 === 0 ? `/v1/keychains/${victim}` : `/v1/keychains/${victim}/categories/advertising`;
            return { kind: 'shred', bytes: Buffer.from(head('DELETE', path, credential)) };
          }
          return get();
        },
      };
    }
    default:
      throw new Error(`unknown workload kind ${String(spec.kind)}`);
  }
}
