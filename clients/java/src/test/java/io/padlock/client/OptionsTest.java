package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.padlock.client.tools.InteropAccess;
import java.time.Duration;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** Options are checked once, with exact messages; nothing secret prints. */
class OptionsTest {
  private static final String CREDENTIAL = "pl1.app.0123456789abcdef.gw4aCvFlsHvoY6bYa5evDo_l4ou5gJzRpST2iNmV_Tg";

  private static PadlockClientOptions.Builder ok() {
    return PadlockClientOptions.builder().group("padlock", "http://127.0.0.1:8700").credential(CREDENTIAL);
  }

  private static void refused(String message, Supplier<PadlockClientOptions> build) {
    PadlockException.InvalidInput e = assertThrows(PadlockException.InvalidInput.class, build::get);
    assertEquals(message, e.getMessage());
  }

  @Test
  void refusesBadOptionsWithExactMessages() {
    refused("options.groups must hold 1 to 16 endpoint groups", () -> PadlockClientOptions.builder().credential(CREDENTIAL).build());
    refused("padlock.urls[0] must be an http: or https: URL without credentials, query or fragment",
        () -> PadlockClientOptions.builder().group("padlock", "ftp://x").credential(CREDENTIAL).build());
    refused("padlock.urls[0] must be an http: or https: URL without credentials, query or fragment",
        () -> PadlockClientOptions.builder().group("padlock", "http://user:pw@x").credential(CREDENTIAL).build());
    refused("padlock.urls[0] must be an http: or https: URL without credentials, query or fragment",
        () -> PadlockClientOptions.builder().group("padlock", "http://x/?a=1").credential(CREDENTIAL).build());
    refused("group name \"padlock\" names another group too", () -> ok().group("padlock", "http://x").build());
    refused("options.credential is required, unless a client certificate authenticates the service on its own",
        () -> PadlockClientOptions.builder().group("padlock", "http://x").build());
    refused("options.credential must be 1-1024 printable ASCII characters without spaces", () -> ok().credential("a b").build());
    refused("options.deadline must be at least options.timeout",
        () -> ok().timeout(Duration.ofSeconds(3)).deadline(Duration.ofSeconds(2)).build());
    refused("options.timeout must be from 1 to 60000 ms", () -> ok().timeout(Duration.ZERO).build());
    refused("options.maxUsersPerBatch must be an integer from 1 to 10000", () -> ok().maxUsersPerBatch(0).build());
    refused("options.categories names a category twice", () -> ok().categories(List.of("profile", "profile")).build());
    assertThrows(PadlockException.InvalidInput.class, () -> EndpointGroup.of("bad name", "http://x"));
  }

  @Test
  void defaultsFollowTheTypeScriptSdk() {
    PadlockClientOptions o = ok().build();
    assertEquals(Duration.ofMillis(500), o.timeout());
    assertEquals(Duration.ofSeconds(2), o.deadline());
    assertEquals(Duration.ofSeconds(5), ok().timeout(Duration.ofSeconds(5)).build().deadline());
    assertEquals("http://127.0.0.1:8700/prefix", EndpointGroup.of("g", "http://127.0.0.1:8700/prefix/").urls().get(0).toString());
  }

  @Test
  void nothingSecretPrints() {
    PadlockClientOptions o = ok().build();
    try (PadlockClient client = new PadlockClient(o)) {
      assertFalse(o.toString().contains("gw4aCvFl"));
      assertFalse(client.toString().contains("gw4aCvFl"));
    }
  }

  @Test
  void clientRefusesBadArgumentsBeforeSendingAnything() {
    // The URL has no server: any request would fail as Unavailable, not InvalidInput.
    try (PadlockClient client = new PadlockClient(ok().group("dead", "http://127.0.0.1:1").build())) {
      assertThrows(PadlockException.InvalidInput.class, () -> client.encrypt("", "profile", "x"));
      assertThrows(PadlockException.InvalidInput.class, () -> client.encrypt("u".repeat(129), "profile", "x"));
      assertThrows(PadlockException.InvalidInput.class, () -> client.encrypt("u1", "Profile", "x"));
      assertThrows(PadlockException.InvalidInput.class, () -> client.decrypt("u1\n", new byte[40]));
      assertThrows(PadlockException.DecryptionFailed.class, () -> client.decrypt("u1", new byte[3]));
      assertThrows(PadlockException.InvalidInput.class, () -> client.scheduleShred("u1", null, null, null, true));
      assertThrows(PadlockException.InvalidInput.class, () -> client.placeHold("u1", null, ""));
      assertEquals(0, client.stats().requests());
    }
  }

  /** Retries against a port where nothing listens: real refused connections, counted. */
  @Test
  void retriesAreOptInAndPaidFromTheBudget() {
    PadlockClientOptions.Builder dead = PadlockClientOptions.builder().group("dead", "http://127.0.0.1:1").credential(CREDENTIAL)
        .down(Duration.ZERO).deadline(Duration.ofSeconds(10));
    try (PadlockClient plain = new PadlockClient(dead.build())) {
      PadlockException.Unavailable e = assertThrows(PadlockException.Unavailable.class, () -> plain.createKeychain("u1"));
      assertEquals(1, e.attempts().size());
      assertEquals(0, plain.stats().retries());
    }
    try (PadlockClient retrying = new PadlockClient(dead.retry(PadlockClientOptions.Retry.defaults()).build())) {
      PadlockException.Unavailable e = assertThrows(PadlockException.Unavailable.class, () -> retrying.createKeychain("u1"));
      assertEquals(3, e.attempts().size()); // the first round and 2 retries
      assertEquals(2, retrying.stats().retries());
    }
    // A budget of 1 token: one retry in all, then the budget (refilled 0.1 a call) is spent.
    try (PadlockClient budgeted = new PadlockClient(
        dead.retry(new PadlockClientOptions.Retry(2, 0.1, 1, Duration.ZERO, Duration.ZERO)).build())) {
      for (int i = 0; i < 3; i++) assertThrows(PadlockException.Unavailable.class, () -> budgeted.createKeychain("u1"));
      assertEquals(1, budgeted.stats().retries());
    }
    refused("options.retry.budgetRatio must be a number from 0 to 1",
        () -> ok().retry(new PadlockClientOptions.Retry(2, 1.5, 10, Duration.ZERO, Duration.ZERO)).build());
    refused("options.retry.maxDelay must be at least options.retry.baseDelay",
        () -> ok().retry(new PadlockClientOptions.Retry(2, 0.1, 10, Duration.ofMillis(5), Duration.ZERO)).build());
  }

  @Test
  void interopAnswersMalformedLinesAndGoesOn() {
    try (PadlockClient client = new PadlockClient(ok().group("dead", "http://127.0.0.1:1").build())) {
      for (String line : new String[] {"not json", "[1]", "{\"op\":\"nope\"}", "{\"op\":\"decrypt\",\"user\":\"u1\",\"data\":\"***\"}",
          "{\"op\":\"encrypt\",\"user\":5,\"category\":\"profile\",\"data\":\"\"}"}) {
        assertEquals("INVALID_INPUT", InteropAccess.code(client, line), line);
        assertFalse(InteropAccess.answer(client, line).contains("\"ok\":true"), line);
      }
      // A malformed envelope fails before any request.
      assertEquals("DECRYPTION_FAILED", InteropAccess.code(client, "{\"op\":\"decrypt\",\"user\":\"u1\",\"data\":\"AAAA\"}"));
      // No server: UNAVAILABLE, quickly.
      assertEquals("UNAVAILABLE", InteropAccess.code(client, "{\"op\":\"create\",\"user\":\"u1\"}"));
    }
  }
}
