package io.padlock.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * The Padlock client for the JVM: encrypts and decrypts a user's data with that user's derived
 * keys, which it fetches (lookups coalesced into batch-get), caches within the server's
 * maxAgeSeconds, and never hands out. Thread-safe; one per process. Envelopes are byte-compatible
 * with the TypeScript SDK's.
 *
 * <pre>{@code
 * try (PadlockClient padlock = new PadlockClient(PadlockClientOptions.builder()
 *     .group("padlock", "http://padlock-1:8700", "http://padlock-2:8700")
 *     .group("padlock-mirror", "http://padlock-mirror:8700")
 *     .credential(System.getenv("PADLOCK_CREDENTIAL"))
 *     .build())) {
 *   byte[] sealed = padlock.encrypt("alice", "profile", "{\"email\":\"a@example.com\"}");
 *   String text = padlock.decryptText("alice", sealed);
 * }
 * }</pre>
 */
public final class PadlockClient implements AutoCloseable {
  private static final Pattern SCHEDULE_ID = Pattern.compile("sched-[0-9a-f-]{36}");
  private static final Pattern HOLD_ID = Pattern.compile("hold-[0-9a-f-]{36}");
  private static final long SWEEP_INTERVAL_MS = 1000;

  private final PadlockClientOptions options;
  private final Stats stats = new Stats();
  private final ExecutorService executor;
  private final ScheduledExecutorService timer;
  private final Endpoints endpoints;
  private final KeyLookups lookups;
  private volatile JsonNode jwks;
  private volatile boolean closed;

  public PadlockClient(PadlockClientOptions options) {
    if (options == null) throw new PadlockException.InvalidInput("options must not be null");
    this.options = options;
    this.executor = Executors.newCachedThreadPool(daemon("padlock-client"));
    this.timer = Executors.newSingleThreadScheduledExecutor(daemon("padlock-client-timer"));
    this.endpoints = new Endpoints(options, executor, stats);
    this.lookups = new KeyLookups(this::fetchBatch, options, executor, timer, stats);
    timer.scheduleWithFixedDelay(lookups::sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS, TimeUnit.MILLISECONDS);
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    return r -> {
      Thread t = new Thread(r, name);
      t.setDaemon(true);
      return t;
    };
  }

  /** Encrypts UTF-8 text for the user under the current key of {@code category}. */
  public byte[] encrypt(String userId, String category, String plaintext) {
    if (plaintext == null) throw new PadlockException.InvalidInput("plaintext must not be null");
    return encrypt(userId, category, plaintext.getBytes(StandardCharsets.UTF_8));
  }

  /**
   * Encrypts {@code plaintext} for the user under the current key of {@code category}; returns the
   * envelope to store.
   *
   * @throws PadlockException.KeychainShredded the user opted out or is deleted: do not store the data
   */
  public byte[] encrypt(String userId, String category, byte[] plaintext) {
    Identifiers.checkUserId(userId);
    checkCategory(category);
    if (plaintext == null) throw new PadlockException.InvalidInput("plaintext must not be null");
    UserKeys keys = keysOf(userId);
    UserKeys.CategoryKeys entry = keys.categories.get(category);
    if (entry == null) {
      throw new PadlockException.PermissionDenied(
          "the service may not read category \"" + category + "\", or Padlock does not have it", null);
    }
    if (entry.status() == UserKeys.Status.SHREDDED) throw new PadlockException.KeychainShredded(category);
    DerivedKey key = entry.versions().get(entry.current());
    if (entry.status() == UserKeys.Status.NOT_FOUND || key == null) throw new PadlockException.KeychainNotFound(category);
    return Envelope.seal(key, userId, category, entry.current(), plaintext);
  }

  /**
   * Decrypts an envelope made for this user (by any Padlock SDK) under whichever version it names.
   *
   * @throws PadlockException.DecryptionFailed tampered, truncated, another user's, unknown version
   * @throws PadlockException.KeychainShredded treat the data as deleted
   */
  public byte[] decrypt(String userId, byte[] envelope) {
    Identifiers.checkUserId(userId);
    if (envelope == null) throw new PadlockException.InvalidInput("ciphertext must not be null");
    // A malformed envelope fails before any lookup: the header is public, this tells nothing new.
    Envelope.Header header = Envelope.readHeader(envelope);
    if (header == null) throw new PadlockException.DecryptionFailed();
    return open(keysOf(userId), userId, envelope, header);
  }

  /** decrypt, then UTF-8 decoding; the plaintext bytes are zeroed. */
  public String decryptText(String userId, byte[] envelope) {
    byte[] plaintext = decrypt(userId, envelope);
    try {
      return new String(plaintext, StandardCharsets.UTF_8);
    } finally {
      Arrays.fill(plaintext, (byte) 0);
    }
  }

  private static byte[] open(UserKeys keys, String userId, byte[] envelope, Envelope.Header header) {
    UserKeys.CategoryKeys entry = keys.categories.get(header.category());
    if (entry != null && entry.status() == UserKeys.Status.SHREDDED) {
      throw new PadlockException.KeychainShredded(header.category());
    }
    return Envelope.open(userId, envelope, (category, version) ->
        entry != null && category.equals(header.category()) ? entry.versions().get(version) : null);
  }

  /** One record of a bulk decrypt: whose it is and its envelope. */
  public record BulkRecord(String userId, byte[] envelope) {}

  /** One record's outcome: the plaintext, or the error it would have thrown. */
  public record BulkResult(byte[] plaintext, PadlockException error) {
    public boolean ok() {
      return error == null;
    }
  }

  /**
   * Decrypts many records of many users, for pipelines: the distinct users are taken in chunks
   * (the batch limits), each chunk's keys fetched with one batch-get, its records opened and its
   * keys wiped before the next chunk. Bypasses the cache, so a pass over millions of users neither
   * evicts the service's hot users nor keeps keys past their chunk. One record's failure
   * (shredded, tampered, ...) is its result; a failure of Padlock itself (Unavailable,
   * PermissionDenied) throws.
   */
  public List<BulkResult> bulkDecrypt(List<BulkRecord> records) {
    if (records == null) throw new PadlockException.InvalidInput("records must not be null");
    checkOpen();
    BulkResult[] results = new BulkResult[records.size()];
    Map<String, List<Integer>> byUser = new LinkedHashMap<>();
    for (int i = 0; i < records.size(); i++) {
      BulkRecord r = records.get(i);
      if (r == null || !Identifiers.isUserId(r.userId())) {
        results[i] = new BulkResult(null, new PadlockException.InvalidInput(Identifiers.USER_ID_MESSAGE));
      } else if (r.envelope() == null || Envelope.readHeader(r.envelope()) == null) {
        results[i] = new BulkResult(null, new PadlockException.DecryptionFailed());
      } else {
        byUser.computeIfAbsent(r.userId(), u -> new ArrayList<>()).add(i);
      }
    }
    List<String> chunk = new ArrayList<>();
    int bytes = lookups.baseBodyBytes();
    for (String userId : byUser.keySet()) {
      int add = userId.length() + 3;
      if (!chunk.isEmpty() && (chunk.size() >= lookups.maxUsers() || bytes + add > lookups.maxBodyBytes())) {
        bulkChunk(chunk, byUser, records, results);
        chunk = new ArrayList<>();
        bytes = lookups.baseBodyBytes();
      }
      chunk.add(userId);
      bytes += add;
    }
    if (!chunk.isEmpty()) bulkChunk(chunk, byUser, records, results);
    return Arrays.asList(results);
  }

  private void bulkChunk(List<String> userIds, Map<String, List<Integer>> byUser, List<BulkRecord> records, BulkResult[] results) {
    stats.batches.increment();
    List<UserKeys> fetched = fetchBatch(userIds);
    try {
      for (int u = 0; u < userIds.size(); u++) {
        UserKeys keys = fetched.get(u);
        for (int i : byUser.get(userIds.get(u))) {
          BulkRecord r = records.get(i);
          try {
            checkStatus(keys);
            results[i] = new BulkResult(open(keys, r.userId(), r.envelope(), Envelope.readHeader(r.envelope())), null);
          } catch (PadlockException e) {
            results[i] = new BulkResult(null, e);
          }
        }
      }
    } finally {
      for (UserKeys k : fetched) k.wipe();
    }
  }

  /** One category of a user's keys, as getKeys returns it: copies the caller owns and should wipe. */
  public record CategoryKeysView(String category, String status, Integer current, Map<Integer, DerivedKey> keys) {}

  /**
   * The user's derived keys, for code that must encrypt in another format. Copies, oldest version
   * first: wipe them when done. Prefer encrypt and decrypt.
   */
  public List<CategoryKeysView> getKeys(String userId) {
    Identifiers.checkUserId(userId);
    UserKeys keys = keysOf(userId);
    List<CategoryKeysView> out = new ArrayList<>();
    for (Map.Entry<String, UserKeys.CategoryKeys> e : keys.categories.entrySet()) {
      Map<Integer, DerivedKey> copies = new LinkedHashMap<>();
      e.getValue().versions().forEach((version, key) -> copies.put(version, key.copy()));
      UserKeys.CategoryKeys c = e.getValue();
      out.add(new CategoryKeysView(e.getKey(), c.status().name().toLowerCase(java.util.Locale.ROOT),
          c.status() == UserKeys.Status.OK ? c.current() : null, java.util.Collections.unmodifiableMap(copies)));
    }
    return List.copyOf(out);
  }

  /** Creates the user's keychain at signup (idempotent; needs the create right); true when this call created it. */
  public boolean createKeychain(String userId) {
    Identifiers.checkUserId(userId);
    long sentAt = System.nanoTime();
    ObjectNode body = Endpoints.JSON.createObjectNode().put("userId", userId);
    Object[] created = new Object[2];
    call("POST", "/v1/keychains", bytes(body), json -> {
      JsonNode flag = json.get("created");
      if (flag == null || !flag.isBoolean()) throw new UserKeys.BadResponse("created is not a boolean");
      created[0] = flag.asBoolean();
      created[1] = UserKeys.parse(json, userId, options.categories);
      return Boolean.TRUE;
    });
    if (!closed) lookups.prime((UserKeys) created[1], sentAt);
    return (Boolean) created[0];
  }

  /** Shreds every category of the user (account deletion; needs the shred right). This client forgets the keys at once. */
  public Lifecycle.ShredOutcome shredKeychain(String userId) {
    Identifiers.checkUserId(userId);
    return shred(userId, "/v1/keychains/" + encode(userId));
  }

  /** Shreds one category of the user (an opt-out); the others stay readable. */
  public Lifecycle.ShredOutcome shredCategory(String userId, String category) {
    Identifiers.checkUserId(userId);
    Identifiers.checkCategory(category);
    return shred(userId, "/v1/keychains/" + encode(userId) + "/categories/" + category);
  }

  /** Adds a new key version to a category (needs the rotate right); new data is encrypted with it. */
  public Lifecycle.Rotation rotateCategory(String userId, String category) {
    Identifiers.checkUserId(userId);
    Identifiers.checkCategory(category);
    Lifecycle.Rotation rotation = call("POST", "/v1/keychains/" + encode(userId) + "/categories/" + category + "/rotate", null, json -> {
      JsonNode version = json.get("version");
      if (version == null || !version.isIntegralNumber() || !Identifiers.isVersion(version.asLong())) {
        throw new UserKeys.BadResponse("version");
      }
      return new Lifecycle.Rotation(userId, category, version.asInt());
    });
    lookups.invalidate(userId);
    return rotation;
  }

  /**
   * Verifies a deletion receipt with the keys Padlock publishes (GET /v1/receipts/keys, fetched
   * once, and again when a receipt names a kid not yet seen) and returns what it attests.
   *
   * @throws PadlockException.ReceiptInvalid when it does not verify
   */
  public ReceiptClaims verifyReceipt(String jws) {
    if (jws == null || jws.length() > 65536) throw new PadlockException.InvalidInput("jws must be a string of at most 64 KiB");
    String trimmed = jws.trim();
    String kid = Receipts.kidOf(trimmed);
    JsonNode keys = jwks;
    if (keys == null || (kid != null && !hasKid(keys, kid))) {
      keys = call("GET", "/v1/receipts/keys", null, json -> {
        if (!json.path("keys").isArray()) throw new UserKeys.BadResponse("the JWKS has no keys array");
        return json;
      });
      jwks = keys;
    }
    return Receipts.verify(trimmed, keys);
  }

  private static boolean hasKid(JsonNode keys, String kid) {
    for (JsonNode k : keys.path("keys")) if (kid.equals(k.path("kid").asText(null))) return true;
    return false;
  }

  /**
   * Schedules the shred of the keychain (category null) or one category after a grace period, or
   * at {@code executeAt} (give exactly one). With serveDuringGrace false the keys are withheld
   * meanwhile (KeychainPendingDeletion).
   */
  public Lifecycle.ScheduledShred scheduleShred(String userId, String category, Long graceSeconds, Instant executeAt, boolean serveDuringGrace) {
    Identifiers.checkUserId(userId);
    if (category != null) Identifiers.checkCategory(category);
    if ((graceSeconds == null) == (executeAt == null)) throw new PadlockException.InvalidInput("give exactly one of graceSeconds and executeAt");
    if (graceSeconds != null && graceSeconds < 0) throw new PadlockException.InvalidInput("graceSeconds must be a whole number of seconds >= 0");
    ObjectNode body = Endpoints.JSON.createObjectNode().put("serveDuringGrace", serveDuringGrace);
    if (category != null) body.put("category", category);
    if (graceSeconds != null) body.put("graceSeconds", graceSeconds);
    if (executeAt != null) body.put("executeAt", executeAt.toString());
    return call("POST", "/v1/keychains/" + encode(userId) + "/schedules", bytes(body), json -> record(json, Lifecycle.ScheduledShred.class, "scheduleId", SCHEDULE_ID));
  }

  /** Cancels a scheduled shred no node has started. */
  public Lifecycle.ScheduledShred cancelScheduledShred(String userId, String scheduleId) {
    return scheduleCall("DELETE", userId, scheduleId);
  }

  /** One scheduled shred's state: pending, executing, executed or cancelled. */
  public Lifecycle.ScheduledShred getScheduledShred(String userId, String scheduleId) {
    return scheduleCall("GET", userId, scheduleId);
  }

  private Lifecycle.ScheduledShred scheduleCall(String method, String userId, String scheduleId) {
    Identifiers.checkUserId(userId);
    if (scheduleId == null || !SCHEDULE_ID.matcher(scheduleId).matches()) throw new PadlockException.InvalidInput("scheduleId must look like sched-<uuid>");
    return call(method, "/v1/keychains/" + encode(userId) + "/schedules/" + scheduleId, null, json -> record(json, Lifecycle.ScheduledShred.class, "scheduleId", SCHEDULE_ID));
  }

  /** Places a legal hold on the keychain (category null) or one category; needs the hold right. */
  public Lifecycle.LegalHoldRecord placeHold(String userId, String category, String reason) {
    Identifiers.checkUserId(userId);
    if (category != null) Identifiers.checkCategory(category);
    if (reason == null || reason.isEmpty() || reason.length() > 1000) throw new PadlockException.InvalidInput("reason must be 1-1000 characters");
    ObjectNode body = Endpoints.JSON.createObjectNode().put("reason", reason);
    if (category != null) body.put("category", category);
    return call("POST", "/v1/keychains/" + encode(userId) + "/holds", bytes(body), json -> record(json, Lifecycle.LegalHoldRecord.class, "holdId", HOLD_ID));
  }

  /** Releases a legal hold; needs the hold right. */
  public Lifecycle.LegalHoldRecord releaseHold(String userId, String holdId) {
    Identifiers.checkUserId(userId);
    if (holdId == null || !HOLD_ID.matcher(holdId).matches()) throw new PadlockException.InvalidInput("holdId must look like hold-<uuid>");
    return call("DELETE", "/v1/keychains/" + encode(userId) + "/holds/" + holdId, null, json -> record(json, Lifecycle.LegalHoldRecord.class, "holdId", HOLD_ID));
  }

  /** The user's scheduled shreds and legal holds, from the keychain's metadata. */
  public Lifecycle.Status lifecycleStatus(String userId) {
    Identifiers.checkUserId(userId);
    return call("GET", "/v1/keychains/" + encode(userId), null, json -> {
      if (!json.path("schedules").isArray() || !json.path("holds").isArray()) throw new UserKeys.BadResponse("schedules or holds is not an array");
      List<Lifecycle.ScheduledShred> schedules = new ArrayList<>();
      for (JsonNode s : json.get("schedules")) schedules.add(record(s, Lifecycle.ScheduledShred.class, "scheduleId", SCHEDULE_ID));
      List<Lifecycle.LegalHoldRecord> holds = new ArrayList<>();
      for (JsonNode h : json.get("holds")) holds.add(record(h, Lifecycle.LegalHoldRecord.class, "holdId", HOLD_ID));
      return new Lifecycle.Status(userId, List.copyOf(schedules), List.copyOf(holds));
    });
  }

  /** Drops this client's cached keys of the user; the next operation asks Padlock again. */
  public void forget(String userId) {
    lookups.invalidate(userId);
  }

  public Stats stats() {
    return stats;
  }

  /** Users whose keys are cached now. */
  public int cacheEntries() {
    return lookups.cacheEntries();
  }

  /** Estimated bytes of the cached keys now. */
  public long cacheBytes() {
    return lookups.cacheBytes();
  }

  /** Cancels requests in flight (they fail with Unavailable), wipes cached keys, stops the threads. */
  @Override
  public void close() {
    if (closed) return;
    closed = true;
    endpoints.close();
    lookups.close();
    timer.shutdownNow();
    executor.shutdownNow();
  }

  @Override
  public String toString() {
    return "PadlockClient[" + options + "]";
  }

  // ---------------------------------------------------------------------------------------------

  private void checkCategory(String category) {
    Identifiers.checkCategory(category);
    if (options.categories != null && !options.categories.contains(category)) {
      throw new PadlockException.InvalidInput("category \"" + category + "\" is not among options.categories");
    }
  }

  private void checkOpen() {
    if (closed) throw new PadlockException.Unavailable("the client is closed", List.of());
  }

  private static void checkStatus(UserKeys keys) {
    switch (keys.status) {
      case NOT_FOUND -> throw new PadlockException.KeychainNotFound(null);
      case SHREDDED -> throw new PadlockException.KeychainShredded(null);
      case PENDING_DELETION -> throw new PadlockException.KeychainPendingDeletion();
      default -> {}
    }
  }

  private UserKeys keysOf(String userId) {
    checkOpen();
    UserKeys keys = lookups.cached(userId);
    if (keys == null) keys = await(lookups.request(userId));
    // close() wipes cached keys: never use them after it, even if this lookup began before.
    checkOpen();
    checkStatus(keys);
    return keys;
  }

  private UserKeys await(CompletableFuture<UserKeys> request) {
    try {
      // The batch-get itself ends within the deadline; the margin covers a sender thread's start.
      return request.get(options.deadline.toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof PadlockException p) throw p; // from the sender thread, as it was
      throw new PadlockException.Unavailable("the key lookup failed: " + e.getCause().getClass().getSimpleName(), List.of());
    } catch (TimeoutException e) {
      throw new PadlockException.Unavailable("no Padlock endpoint group answered within the deadline", List.of());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new PadlockException.Unavailable("interrupted while waiting for Padlock", List.of());
    }
  }

  private List<UserKeys> fetchBatch(List<String> userIds) {
    checkOpen();
    byte[] body = KeyLookups.batchBody(userIds, options.categories);
    Endpoints.Outcome<List<UserKeys>> outcome = endpoints.call(new Endpoints.Request("POST", "/v1/keys/batch-get", body, true),
        json -> UserKeys.parseBatch(json, userIds, options.categories));
    if (outcome.ok()) return outcome.value();
    String code = outcome.code();
    if (("BATCH_TOO_LARGE".equals(code) || "BODY_TOO_LARGE".equals(code)) && userIds.size() > 1) {
      // The server's limits are below this client's options: halve, and remember for later batches.
      int half = (userIds.size() + 1) / 2;
      if ("BATCH_TOO_LARGE".equals(code)) lookups.lowerLimits(half, 0);
      else lookups.lowerLimits(0, body.length / 2);
      List<UserKeys> out = new ArrayList<>(fetchBatch(userIds.subList(0, half)));
      out.addAll(fetchBatch(userIds.subList(half, userIds.size())));
      return out;
    }
    throw refusal(outcome);
  }

  private Lifecycle.ShredOutcome shred(String userId, String path) {
    Lifecycle.ShredOutcome outcome = call("DELETE", path, null, json -> {
      JsonNode shredded = json.get("shredded");
      JsonNode receipt = json.get("receipt");
      if (shredded == null || !shredded.isIntegralNumber()) throw new UserKeys.BadResponse("shredded is not a number");
      if (receipt == null || !receipt.path("id").isTextual() || !receipt.path("jws").isTextual()) {
        throw new UserKeys.BadResponse("the shred answer has no receipt");
      }
      return new Lifecycle.ShredOutcome(shredded.asInt(), receipt.get("id").asText(), receipt.get("jws").asText());
    });
    lookups.invalidate(userId);
    return outcome;
  }

  private <T> T call(String method, String path, byte[] body, Function<JsonNode, T> parse) {
    checkOpen();
    // Reads may be hedged; writes are not.
    Endpoints.Outcome<T> outcome = endpoints.call(new Endpoints.Request(method, path, body, "GET".equals(method)), parse);
    if (outcome.ok()) return outcome.value();
    throw refusal(outcome);
  }

  /** Maps a refusal (a 4xx with Padlock's error body) to the client's exceptions. */
  private static PadlockException refusal(Endpoints.Outcome<?> o) {
    return switch (o.code()) {
      case "KEYCHAIN_NOT_FOUND" -> new PadlockException.KeychainNotFound(null);
      case "KEYCHAIN_SHREDDED" -> new PadlockException.KeychainShredded(null);
      case "KEYCHAIN_PENDING_DELETION" -> new PadlockException.KeychainPendingDeletion();
      case "LEGAL_HOLD" -> new PadlockException.LegalHold("Padlock refused: " + o.message());
      case "UNAUTHENTICATED" -> new PadlockException.PermissionDenied("Padlock refused the credential", o.code());
      case "PERMISSION_DENIED" -> new PadlockException.PermissionDenied("Padlock refused: " + o.message(), o.code());
      default -> new PadlockException.InvalidInput("Padlock refused the request (" + o.code() + "): " + o.message());
    };
  }

  private static <T> T record(JsonNode json, Class<T> type, String idField, Pattern id) {
    if (json == null || !json.path(idField).isTextual() || !id.matcher(json.get(idField).asText()).matches()) {
      throw new UserKeys.BadResponse(idField + " is missing");
    }
    try {
      return Endpoints.JSON.treeToValue(json, type);
    } catch (Exception e) {
      throw new UserKeys.BadResponse(idField + " record");
    }
  }

  private static byte[] bytes(JsonNode body) {
    try {
      return Endpoints.JSON.writeValueAsBytes(body);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static String encode(String userId) {
    return URLEncoder.encode(userId, StandardCharsets.UTF_8).replace("+", "%20");
  }
}
