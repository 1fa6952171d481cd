/*
 * Searching text and bytes for secrets in any of the forms they could take:
 * raw bytes, hex (either case), base64 and base64url (padded or not). Many
 * secrets are searched at once: every form is indexed by its first few
 * characters, the haystack is read once, and only windows whose prefix is
 * indexed are compared in full, so logs of a whole run scan in seconds.
 */

export interface SecretHit {
  readonly secret: string;
  readonly form: string;
  readonly at: number;
}

const PREFIX = 24;

interface Form {
  readonly secret: string;
  readonly form: string;
  readonly text: string;
}

export class SecretIndex {
  readonly #forms = new Map<string, Form[]>();
  #count = 0;

  get secrets(): number {
    return this.#count;
  }

  /** Adds a secret under a name (the name is what a hit reports). */
  add(name: string, bytes: Buffer): void {
    if (bytes.length < 16) return;
    this.#count++;
    const forms: [string, string][] = [
      ['raw', bytes.toString('latin1')],
      ['hex', bytes.toString('hex')],
      ['HEX', bytes.toString('hex').toUpperCase()],
      ['base64', bytes.toString('base64').replace(/=+$/, '')],
      ['base64url', bytes.toString('base64url')],
    ];
    for (const [form, text] of forms) {
      const key = text.slice(0, PREFIX);
      const list = this.#forms.get(key) ?? [];
      list.push({ secret: name, form, text });
      this.#forms.set(key, list);
    }
  }

  /** Every place a secret occurs in `haystack` (bytes read as latin1, so raw bytes match too). */
  scan(haystack: Buffer | string, limit = 100): SecretHit[] {
    const text = typeof haystack === 'string' ? haystack : haystack.toString('latin1');
    const hits: SecretHit[] = [];
    for (let i = 0; i + PREFIX <= text.length && hits.length < limit; i++) {
      const candidates = this.#forms.get(text.slice(i, i + PREFIX));
      if (candidates === undefined) continue;
      for (const c of candidates) {
        if (text.startsWith(c.text, i)) hits.push({ secret: c.secret, form: c.form, at: i });
      }
    }
    return hits;
  }
}
