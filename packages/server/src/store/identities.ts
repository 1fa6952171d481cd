/*
 * TLS identities are stored one per line: an identity holds no control
 * character (isTlsIdentity), and any text parses, so an edited cell reaches
 * the registry's checks instead of failing the whole read.
 */
export function joinIdentities(identities: readonly string[]): string {
  return identities.join('\n');
}

export function splitIdentities(text: string | null | undefined): string[] {
  return text === null || text === undefined || text === '' ? [] : text.split('\n');
}
