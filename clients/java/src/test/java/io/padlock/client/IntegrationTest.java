package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The client against real Padlock processes: two groups ({@code padlock serve} twice) on one
 * SQLite store, maxStalenessSeconds 2. Batch-gets are counted by the servers' own /metrics.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class IntegrationTest {
  private PadlockProcesses deployment;
  private PadlockProcesses.Server primary;
  private PadlockProcesses.Server mirror;
  private final List<PadlockClient> clients = new ArrayList<>();

  @BeforeAll
  void start() throws Exception {
    deployment = new PadlockProcesses(2);
    primary = deployment.start("padlock");
    mirror = deployment.start("padlock-mirror");
  }

  @AfterAll
  void stop() throws Exception {
    for (PadlockClient c : clients) c.close();
    if (deployment != null) deployment.close();
  }

  private PadlockClient client(String service, PadlockClientOptions.Builder builder) {
    PadlockClient c = new PadlockClient(builder.credential(deployment.credentials.get(service)).build());
    clients.add(c);
    return c;
  }

  /** Generous timeouts: CI machines are loaded; the tests about timeouts set their own. */
  private PadlockClientOptions.Builder both() {
    return PadlockClientOptions.builder()
        .group(primary.name, primary.url)
        .group(mirror.name, mirror.url)
        .timeout(Duration.ofSeconds(10))
        .deadline(Duration.ofSeconds(20));
  }

  private PadlockClient app() {
    return client("app", both());
  }

  @Test
  void encryptsAndDecryptsAcrossClientsWithTheSameEnvelope() {
    PadlockClient writer = app();
    assertTrue(writer.createKeychain("java-alice"));
    assertFalse(writer.createKeychain("java-alice"));
    byte[] sealed = writer.encrypt("java-alice", "profile", "hello, padlock");
    assertEquals(new Envelope.Header("profile", 1), Envelope.readHeader(sealed));
    assertEquals("hello, padlock".length() + Envelope.overhead("profile"), sealed.length);
    assertEquals("hello, padlock", writer.decryptText("java-alice", sealed));
    // A second client (cold cache) fetches the same derived key.
    assertEquals("hello, padlock", app().decryptText("java-alice", sealed));
    // Another user's key, another service's key: both fail as one error.
    writer.createKeychain("java-bob");
    assertThrows(PadlockException.DecryptionFailed.class, () -> writer.decrypt("java-bob", sealed));
    assertThrows(PadlockException.KeychainNotFound.class, () -> writer.encrypt("java-nobody", "profile", "x"));
    PadlockClient reader = client("reader", both());
    assertThrows(PadlockException.DecryptionFailed.class, () -> reader.decrypt("java-alice", sealed));
    assertThrows(PadlockException.PermissionDenied.class, () -> reader.encrypt("java-alice", "payments", "x"));
    assertThrows(PadlockException.InvalidInput.class, () -> writer.encrypt("java alice", "profile", "x"));
    // getKeys hands out copies: the envelope opens with them, and wiping them leaves the client's intact.
    List<PadlockClient.CategoryKeysView> keys = writer.getKeys("java-alice");
    assertEquals(List.of("profile", "payments", "advertising"), keys.stream().map(PadlockClient.CategoryKeysView::category).toList());
    DerivedKey profileKey = keys.get(0).keys().get(1);
    assertEquals("hello, padlock", new String(Envelope.open("java-alice", sealed, (c, v) -> profileKey), StandardCharsets.UTF_8));
    profileKey.wipe();
    assertEquals("hello, padlock", writer.decryptText("java-alice", sealed));
  }

  @Test
  void aFlippedByteFailsAgainstARealKey() {
    PadlockClient padlock = app();
    padlock.createKeychain("java-flip");
    byte[] sealed = padlock.encrypt("java-flip", "profile", "the record");
    for (int i = 0; i < sealed.length; i++) {
      byte[] changed = sealed.clone();
      changed[i] ^= 0x01;
      PadlockException e = assertThrows(PadlockException.class, () -> padlock.decrypt("java-flip", changed), "byte " + i);
      assertEquals(PadlockException.Code.DECRYPTION_FAILED, e.code(), "byte " + i);
    }
    // Relabelled to another category the user holds: the key differs and the AAD binds the label.
    byte[] other = padlock.encrypt("java-flip", "payments", "the record");
    assertEquals("the record", padlock.decryptText("java-flip", other));
    assertThrows(PadlockException.DecryptionFailed.class,
        () -> padlock.decrypt("java-flip", java.util.Arrays.copyOf(sealed, sealed.length - 1)));
  }

  @Test
  void coalescesConcurrentLookupsIntoFewBatchGets() throws Exception {
    PadlockClient admin = app();
    List<String> users = new ArrayList<>();
    for (int i = 0; i < 100; i++) users.add("java-many-" + i);
    for (String u : users) admin.createKeychain(u);
    // Lookups gathered for 200 ms: 100 threads on 100 users at once, each user's lookup 3 times.
    PadlockClient padlock = client("app", both().batchDelay(Duration.ofMillis(200)));
    long before = primary.batchGets() + mirror.batchGets();
    ExecutorService pool = Executors.newFixedThreadPool(100);
    java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
    try {
      List<Future<byte[]>> sealed = new ArrayList<>();
      for (int i = 0; i < 300; i++) {
        String u = users.get(i % users.size());
        sealed.add(pool.submit(() -> {
          go.await();
          return padlock.encrypt(u, "profile", "x");
        }));
      }
      go.countDown();
      for (Future<byte[]> f : sealed) assertNotNull(f.get());
    } finally {
      pool.shutdownNow();
    }
    long batches = primary.batchGets() + mirror.batchGets() - before;
    assertEquals(padlock.stats().batches(), batches);
    assertTrue(batches <= 3, "batch-gets for 100 users: " + batches);
    assertEquals(300, padlock.stats().lookups());
  }

  @Test
  void reportsShreddedAfterAShredWithinTheBound() throws Exception {
    PadlockClient shredder = app();
    PadlockClient other = app();
    shredder.createKeychain("java-carol");
    byte[] profile = shredder.encrypt("java-carol", "profile", "carol's profile");
    assertEquals("carol's profile", other.decryptText("java-carol", profile)); // cached by `other`
    Lifecycle.ShredOutcome outcome = shredder.shredKeychain("java-carol");
    assertEquals(3, outcome.shredded());
    // The shredding client forgets at once; shredded is not not-found.
    assertThrows(PadlockException.KeychainShredded.class, () -> shredder.decrypt("java-carol", profile));
    assertThrows(PadlockException.KeychainShredded.class, () -> shredder.encrypt("java-carol", "profile", "x"));
    // Another client within maxStalenessSeconds (2 s), plus a margin for a loaded machine.
    long deadline = System.nanoTime() + Duration.ofSeconds(deployment.maxStalenessSeconds + 2).toNanos();
    PadlockException last = null;
    while (System.nanoTime() < deadline) {
      try {
        other.decrypt("java-carol", profile);
        Thread.sleep(100);
      } catch (PadlockException e) {
        last = e;
        break;
      }
    }
    assertInstanceOf(PadlockException.KeychainShredded.class, last);
    // The receipt verifies with the published keys and attests the shred; a changed one does not.
    ReceiptClaims claims = shredder.verifyReceipt(outcome.receiptJws());
    assertEquals("java-carol", claims.sub());
    assertEquals("keychain", claims.scope());
    assertEquals(outcome.receiptId(), claims.jti());
    String jws = outcome.receiptJws();
    int i = jws.length() / 2;
    String changed = jws.substring(0, i) + (jws.charAt(i) == 'A' ? 'B' : 'A') + jws.substring(i + 1);
    assertThrows(PadlockException.ReceiptInvalid.class, () -> shredder.verifyReceipt(changed));
  }

  @Test
  void shredsOneCategoryAndRotates() {
    PadlockClient padlock = app();
    padlock.createKeychain("java-dave");
    byte[] ads = padlock.encrypt("java-dave", "advertising", "segment 7");
    byte[] profile = padlock.encrypt("java-dave", "profile", "dave");
    Lifecycle.ShredOutcome outcome = padlock.shredCategory("java-dave", "advertising");
    assertEquals(1, outcome.shredded());
    assertEquals("category", padlock.verifyReceipt(outcome.receiptJws()).scope());
    PadlockException.KeychainShredded e = assertThrows(PadlockException.KeychainShredded.class, () -> padlock.decrypt("java-dave", ads));
    assertEquals("advertising", e.category());
    assertEquals("dave", padlock.decryptText("java-dave", profile));
    // Opt back in: a new version; the old data stays unreadable, new data uses version 2.
    assertEquals(2, padlock.rotateCategory("java-dave", "advertising").version());
    byte[] fresh = padlock.encrypt("java-dave", "advertising", "segment 9");
    assertEquals(2, Envelope.readHeader(fresh).version());
    assertEquals("segment 9", padlock.decryptText("java-dave", fresh));
    assertThrows(PadlockException.DecryptionFailed.class, () -> padlock.decrypt("java-dave", ads));
  }

  @Test
  void holdsBlockShredsAndSchedulesCanBeCancelled() {
    PadlockClient padlock = app();
    padlock.createKeychain("java-erin");
    Lifecycle.LegalHoldRecord hold = padlock.placeHold("java-erin", null, "case 2026-114");
    assertEquals("in_force", hold.state());
    assertThrows(PadlockException.LegalHold.class, () -> padlock.shredKeychain("java-erin"));
    Lifecycle.ScheduledShred s = padlock.scheduleShred("java-erin", null, 3600L, null, true);
    assertEquals("pending", s.state());
    Lifecycle.Status status = padlock.lifecycleStatus("java-erin");
    assertEquals(1, status.schedules().size());
    assertEquals(1, status.holds().size());
    assertEquals("cancelled", padlock.cancelScheduledShred("java-erin", s.scheduleId()).state());
    assertEquals("cancelled", padlock.getScheduledShred("java-erin", s.scheduleId()).state());
    assertEquals("released", padlock.releaseHold("java-erin", hold.holdId()).state());
    assertEquals(3, padlock.shredKeychain("java-erin").shredded());
    assertThrows(PadlockException.InvalidInput.class, () -> padlock.releaseHold("java-erin", "hold-x"));
  }

  @Test
  void withheldKeysDuringAGracePeriodArePendingDeletion() {
    PadlockClient padlock = app();
    padlock.createKeychain("java-ivy");
    byte[] sealed = padlock.encrypt("java-ivy", "profile", "ivy");
    Lifecycle.ScheduledShred s = padlock.scheduleShred("java-ivy", null, 3600L, null, false);
    padlock.forget("java-ivy");
    assertThrows(PadlockException.KeychainPendingDeletion.class, () -> padlock.decrypt("java-ivy", sealed));
    padlock.cancelScheduledShred("java-ivy", s.scheduleId());
    padlock.forget("java-ivy");
    assertEquals("ivy", padlock.decryptText("java-ivy", sealed));
  }

  @Test
  void bulkDecryptsManyUsersWithOneBatchGetPerChunk() throws Exception {
    PadlockClient admin = app();
    List<PadlockClient.BulkRecord> records = new ArrayList<>();
    for (int i = 0; i < 30; i++) {
      String u = "java-bulk-" + i;
      admin.createKeychain(u);
      records.add(new PadlockClient.BulkRecord(u, admin.encrypt(u, "profile", "record " + i)));
      records.add(new PadlockClient.BulkRecord(u, admin.encrypt(u, "payments", "card " + i)));
    }
    admin.shredKeychain("java-bulk-3");
    byte[] tampered = records.get(10).envelope().clone();
    tampered[tampered.length - 1] ^= 1;
    records.set(10, new PadlockClient.BulkRecord(records.get(10).userId(), tampered));
    PadlockClient bulk = client("app", both().maxUsersPerBatch(10));
    long before = primary.batchGets() + mirror.batchGets();
    List<PadlockClient.BulkResult> results = bulk.bulkDecrypt(records);
    assertEquals(3, primary.batchGets() + mirror.batchGets() - before, "30 users in chunks of 10");
    assertEquals(0, bulk.cacheEntries(), "bulk keys are not cached");
    for (int i = 0; i < records.size(); i++) {
      PadlockClient.BulkResult r = results.get(i);
      if (i == 6 || i == 7) assertEquals(PadlockException.Code.KEYCHAIN_SHREDDED, r.error().code());
      else if (i == 10) assertEquals(PadlockException.Code.DECRYPTION_FAILED, r.error().code());
      else assertEquals((i % 2 == 0 ? "record " : "card ") + i / 2, new String(r.plaintext(), StandardCharsets.UTF_8));
    }
  }

  @Test
  void failsOverToTheSecondGroupWhenTheFirstIsDown() throws Exception {
    PadlockProcesses.Server doomed = deployment.start("doomed");
    PadlockClient padlock = client("app", PadlockClientOptions.builder()
        .group("doomed", doomed.url)
        .group(mirror.name, mirror.url)
        .timeout(Duration.ofSeconds(10))
        .deadline(Duration.ofSeconds(20)));
    padlock.createKeychain("java-frank");
    byte[] sealed = padlock.encrypt("java-frank", "profile", "still here");
    assertEquals(0, padlock.stats().failovers());
    doomed.kill();
    padlock.forget("java-frank");
    assertEquals("still here", padlock.decryptText("java-frank", sealed));
    assertEquals(1, padlock.stats().failovers());
    // Only the dead group: Unavailable, naming it, within the deadline.
    PadlockClient alone = client("app", PadlockClientOptions.builder().group("doomed", doomed.url));
    PadlockException.Unavailable e = assertThrows(PadlockException.Unavailable.class, () -> alone.decrypt("java-frank", sealed));
    assertEquals("ECONNREFUSED", e.attempts().get(0).reason());
    assertFalse(e.getMessage().contains(deployment.credentials.get("app")));
  }

  @Test
  void timesOutOnAServerThatDoesNotAnswer() throws Exception {
    try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      List<Socket> accepted = new ArrayList<>();
      Thread acceptor = new Thread(() -> {
        try {
          while (true) accepted.add(silent.accept()); // accept, read nothing, answer nothing
        } catch (Exception closed) {
          // The test is over.
        }
      });
      acceptor.setDaemon(true);
      acceptor.start();
      String url = "http://127.0.0.1:" + silent.getLocalPort();
      PadlockClient stuck = client("app", PadlockClientOptions.builder()
          .group("silent", url).timeout(Duration.ofMillis(300)).deadline(Duration.ofMillis(1000)));
      long started = System.nanoTime();
      PadlockException.Unavailable e = assertThrows(PadlockException.Unavailable.class, () -> stuck.encrypt("java-alice", "profile", "x"));
      long ms = (System.nanoTime() - started) / 1_000_000;
      assertEquals("TIMEOUT", e.attempts().get(0).reason());
      assertTrue(ms >= 250 && ms < 3000, "took " + ms + " ms");
      // With a second group, the silent one costs one timeout and the call succeeds.
      PadlockClient rescued = client("app", PadlockClientOptions.builder()
          .group("silent", url).group(mirror.name, mirror.url).timeout(Duration.ofMillis(500)).deadline(Duration.ofSeconds(10)));
      rescued.createKeychain("java-gina");
      assertEquals("ok", rescued.decryptText("java-gina", rescued.encrypt("java-gina", "profile", "ok")));
      assertTrue(rescued.stats().failovers() >= 1);
      for (Socket s : accepted) s.close();
    }
  }

  @Test
  void hedgesAKeyLookupPastASlowGroup() throws Exception {
    try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      List<Socket> accepted = new ArrayList<>();
      Thread acceptor = new Thread(() -> {
        try {
          while (true) accepted.add(silent.accept());
        } catch (Exception closed) {
          // The test is over.
        }
      });
      acceptor.setDaemon(true);
      acceptor.start();
      app().createKeychain("java-jack");
      PadlockClient padlock = client("app", PadlockClientOptions.builder()
          .group("silent", "http://127.0.0.1:" + silent.getLocalPort())
          .group(mirror.name, mirror.url)
          .timeout(Duration.ofSeconds(8))
          .deadline(Duration.ofSeconds(20))
          .hedgeAfter(Duration.ofMillis(200)));
      long started = System.nanoTime();
      byte[] sealed = padlock.encrypt("java-jack", "profile", "hedged");
      long ms = (System.nanoTime() - started) / 1_000_000;
      // Answered by the mirror before the silent group's 8 s timeout: the lookup was hedged, not failed over.
      assertTrue(ms < 8000, "took " + ms + " ms");
      assertEquals(1, padlock.stats().hedges());
      assertEquals(0, padlock.stats().failovers());
      assertEquals("hedged", padlock.decryptText("java-jack", sealed));
      for (Socket s : accepted) s.close();
    }
  }

  /** Runs a Node.js ES module with the TypeScript SDK (packages/client/dist) on the app credential; its stdout. */
  private String typescript(String body, String... args) throws Exception {
    String sdk = Vectors.repo().resolve("packages/client/dist/index.js").toUri().toString();
    String script = "import { PadlockClient } from '" + sdk + "';"
        + "const padlock = new PadlockClient({ groups: [{ name: 'padlock', urls: [process.env.URL] }], credential: process.env.CREDENTIAL });"
        + "const args = process.argv.slice(1);" + body + "await padlock.close();";
    List<String> command = new ArrayList<>(List.of("node", "--input-type=module", "-e", script));
    command.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT);
    pb.environment().put("URL", primary.url);
    pb.environment().put("CREDENTIAL", deployment.credentials.get("app"));
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS) && p.exitValue() == 0, "node exited with " + p.exitValue());
    return out;
  }

  /** The interop program (INTEROP.md) as a process: JSON lines in, JSON lines out. */
  private List<JsonNode> interop(String... lines) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(ProcessHandle.current().info().command().orElse("java"), "-cp",
        System.getProperty("java.class.path"), "io.padlock.client.tools.Interop").redirectError(ProcessBuilder.Redirect.INHERIT);
    pb.environment().put("PADLOCK_INTEROP_URLS", primary.url);
    pb.environment().put("PADLOCK_INTEROP_MIRROR_URLS", mirror.url);
    pb.environment().put("PADLOCK_INTEROP_CREDENTIAL", deployment.credentials.get("app"));
    Process p = pb.start();
    p.getOutputStream().write((String.join("\n", lines) + "\n").getBytes(StandardCharsets.UTF_8));
    p.getOutputStream().close();
    List<JsonNode> answers = new ArrayList<>();
    for (String line : new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
      answers.add(new ObjectMapper().readTree(line));
    }
    assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS));
    assertEquals(0, p.exitValue());
    return answers;
  }

  @Test
  void envelopesCrossBetweenTheTypeScriptSdkAndThisClient() throws Exception {
    String fromTs = typescript("await padlock.createKeychain('java-ts');"
        + "process.stdout.write((await padlock.encrypt('java-ts', 'payments', 'from typescript')).toString('base64'));");
    PadlockClient padlock = app();
    assertEquals("from typescript", padlock.decryptText("java-ts", Base64.getDecoder().decode(fromTs)));
    String fromJava = Base64.getEncoder().encodeToString(padlock.encrypt("java-ts", "payments", "from java"));
    assertEquals("from java", typescript("process.stdout.write(await padlock.decryptText('java-ts', Buffer.from(args[0], 'base64')));", fromJava));
    // The interop program, as the three-way driver runs it.
    String b64 = Base64.getEncoder().encodeToString("via interop".getBytes(StandardCharsets.UTF_8));
    List<JsonNode> answers = interop(
        "{\"op\":\"decrypt\",\"user\":\"java-ts\",\"data\":\"" + fromTs + "\"}",
        "{\"op\":\"encrypt\",\"user\":\"java-ts\",\"category\":\"profile\",\"data\":\"" + b64 + "\"}",
        "not json",
        "{\"op\":\"bulkDecrypt\",\"records\":[{\"user\":\"java-ts\",\"data\":\"" + fromJava + "\"},{\"user\":\"java-nobody\",\"data\":\"" + fromJava + "\"}]}",
        "{\"op\":\"shredCategory\",\"user\":\"java-ts\",\"category\":\"payments\"}",
        "{\"op\":\"decrypt\",\"user\":\"java-ts\",\"data\":\"" + fromTs + "\"}");
    assertEquals(6, answers.size());
    assertEquals("from typescript", new String(Base64.getDecoder().decode(answers.get(0).get("data").asText()), StandardCharsets.UTF_8));
    String sealedByInterop = answers.get(1).get("data").asText();
    assertEquals("via interop", typescript("process.stdout.write(await padlock.decryptText('java-ts', Buffer.from(args[0], 'base64')));", sealedByInterop));
    assertEquals("INVALID_INPUT", answers.get(2).get("code").asText());
    assertEquals("from java", new String(Base64.getDecoder().decode(answers.get(3).get("results").get(0).get("data").asText()), StandardCharsets.UTF_8));
    assertEquals("KEYCHAIN_NOT_FOUND", answers.get(3).get("results").get(1).get("code").asText());
    assertTrue(answers.get(4).get("receipt").asText().startsWith("eyJ"));
    assertEquals("KEYCHAIN_SHREDDED", answers.get(5).get("code").asText());
  }

  @Test
  void closeWipesAndRefuses() {
    PadlockClient padlock = app();
    padlock.createKeychain("java-hal");
    byte[] sealed = padlock.encrypt("java-hal", "profile", "x");
    padlock.close();
    assertThrows(PadlockException.Unavailable.class, () -> padlock.decrypt("java-hal", sealed));
  }
}
