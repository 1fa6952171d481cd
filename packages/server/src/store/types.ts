/*
 * The storage contract. Storage is untrusted: root keys and service
 * derivation keys reach it only wrapped, credentials only as HMAC verifiers.
 * Every backend runs the same conformance suite (store/conformance.ts).
 */

/** One root key row: (user, category, version). `wrapped` is null once shredded. */
export interface KeyRow {
  readonly category: string;
  readonly version: number;
  readonly wrapped: Uint8Array | null;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** Milliseconds since the epoch; null while active. */
  readonly shreddedAt: number | null;
}

export interface NewKeyRow {
  readonly category: string;
  readonly version: number;
  readonly wrapped: Uint8Array;
  readonly createdAt: number;
}

export interface ServicePermissions {
  /** Categories whose derived keys the service may read. */
  readonly read: readonly string[];
  readonly create: boolean;
  readonly rotate: boolean;
  readonly shred: boolean;
}

export interface CredentialRecord {
  readonly credentialId: string;
  /** HMAC verifier of the secret; the secret itself is never stored. */
  readonly verifier: Uint8Array;
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

export interface ServiceRecord {
  readonly serviceId: string;
  /** The service's derivation key, wrapped (see docs/spec.md). */
  readonly wrappedKey: Uint8Array;
  readonly permissions: ServicePermissions;
  readonly createdAt: number;
  /**
   * TLS client identities (URI SAN or certificate subject) that mutual TLS maps
   * to this service; [] when none. One identity names at most one service.
   */
  readonly tlsIdentities: readonly string[];
  readonly credentials: readonly CredentialRecord[];
}

export interface ReadOptions {
  /**
   * Read at the strongest local consistency (Cassandra LOCAL_QUORUM) instead
   * of the fast path; used right after a write.
   */
  readonly fresh?: boolean;
}

export interface KeyStore {
  /** Short name for metrics and logs, e.g. "sqlite". */
  readonly kind: string;

  /** Every row of a user's keychain, ordered by category then version; [] when the user has none. */
  getKeychain(userId: string, options?: ReadOptions): Promise<KeyRow[]>;

  /** getKeychain for many users at once; every requested id is a key of the result. */
  getKeychains(userIds: readonly string[]): Promise<Map<string, KeyRow[]>>;

  /**
   * Inserts each row unless a row with the same (category, version) exists,
   * atomically per row; concurrent callers race safely. Returns the rows this
   * call inserted.
   */
  insertKeys(userId: string, rows: readonly NewKeyRow[]): Promise<NewKeyRow[]>;

  /**
   * Shreds every version of `category`, or of every category when omitted: the
   * wrapped bytes are overwritten, a marker row stays. Returns how many rows
   * this call shredded (already shredded rows do not count).
   */
  shred(userId: string, category: string | undefined, at: number): Promise<number>;

  /** Creates a service; false when one with that id exists already. */
  createService(record: Omit<ServiceRecord, 'credentials'>): Promise<boolean>;
  /** Replaces a service's permissions; false when there is no such service. */
  setPermissions(serviceId: string, permissions: ServicePermissions): Promise<boolean>;
  /** Replaces a service's TLS client identities; false when there is no such service. */
  setTlsIdentities(serviceId: string, identities: readonly string[]): Promise<boolean>;
  /** Adds a credential to an existing service; false when there is no such service. */
  addCredential(serviceId: string, credential: CredentialRecord): Promise<boolean>;
  /** Marks a credential revoked; false when there is no such live credential. */
  revokeCredential(serviceId: string, credentialId: string, at: number): Promise<boolean>;
  getService(serviceId: string): Promise<ServiceRecord | undefined>;
  listServices(): Promise<ServiceRecord[]>;

  /** Resolves when the store answers a trivial read. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
