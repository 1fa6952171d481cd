package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What fails over and what does not, against two small HTTP servers (the JDK's): the first answers
 * as each case scripts, the second answers a scheduled shred properly.
 */
class EndpointsTest {
  private static final String SCHEDULE_ID = "sched-0123abcd-0123-4567-89ab-0123456789ab";
  private static final String GOOD = "{\"scheduleId\":\"" + SCHEDULE_ID + "\",\"userId\":\"u1\",\"category\":null,"
      + "\"state\":\"pending\",\"executeAt\":\"2026-12-05T00:00:00.000Z\",\"serveDuringGrace\":true,"
      + "\"requestedBy\":\"app\",\"createdAt\":\"2026-12-04T00:00:00.000Z\",\"finishedAt\":null,\"finishedBy\":null,\"verified\":true}";

  private HttpServer first;
  private HttpServer second;
  private final AtomicInteger secondHits = new AtomicInteger();

  private static HttpServer server(int status, String body) throws Exception {
    HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    s.createContext("/", exchange -> {
      byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
      exchange.getResponseHeaders().add("content-type", "application/json");
      exchange.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
      if (bytes.length > 0) exchange.getResponseBody().write(bytes);
      exchange.close();
    });
    s.start();
    return s;
  }

  private PadlockClient client(int status, String body) throws Exception {
    first = server(status, body);
    second = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    second.createContext("/", exchange -> {
      secondHits.incrementAndGet();
      byte[] bytes = GOOD.getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, bytes.length);
      exchange.getResponseBody().write(bytes);
      exchange.close();
    });
    second.start();
    return new PadlockClient(PadlockClientOptions.builder()
        .group("first", "http://127.0.0.1:" + first.getAddress().getPort())
        .group("second", "http://127.0.0.1:" + second.getAddress().getPort())
        .credential("pl1.app.0123456789abcdef.gw4aCvFlsHvoY6bYa5evDo_l4ou5gJzRpST2iNmV_Tg")
        .timeout(Duration.ofSeconds(5))
        .deadline(Duration.ofSeconds(10))
        .build());
  }

  @AfterEach
  void stop() {
    if (first != null) first.stop(0);
    if (second != null) second.stop(0);
    secondHits.set(0);
  }

  private void failsOver(int status, String body, String reason) throws Exception {
    try (PadlockClient padlock = client(status, body)) {
      assertEquals(SCHEDULE_ID, padlock.getScheduledShred("u1", SCHEDULE_ID).scheduleId(), reason);
      assertEquals(1, padlock.stats().failovers(), reason);
      assertEquals(1, secondHits.get(), reason);
    }
  }

  @Test
  void failsOverOnServerErrorsOverloadAndUnreadableAnswers() throws Exception {
    failsOver(503, "{\"error\":{\"code\":\"OVERLOADED\",\"message\":\"shed\"}}", "503");
    stop();
    failsOver(500, "", "500 without a body");
    stop();
    failsOver(429, "{\"error\":{\"code\":\"RATE_LIMITED\",\"message\":\"slow down\"}}", "429");
    stop();
    failsOver(200, "{\"scheduleId\":", "a 2xx that is not JSON");
    stop();
    failsOver(200, "{\"scheduleId\":\"sched-x\"}", "a 2xx of the wrong shape");
    stop();
    failsOver(404, "{\"error\":{\"code\":\"ROUTE_NOT_FOUND\",\"message\":\"no route\"}}", "a proxy's wrong path");
    stop();
    failsOver(403, "<html>forbidden</html>", "a 4xx that is not Padlock's error body");
  }

  @Test
  void aRefusalIsFinalAndTyped() throws Exception {
    try (PadlockClient padlock = client(403, "{\"error\":{\"code\":\"PERMISSION_DENIED\",\"message\":\"no shred right\"}}")) {
      PadlockException.PermissionDenied e = assertThrows(PadlockException.PermissionDenied.class, () -> padlock.getScheduledShred("u1", SCHEDULE_ID));
      assertEquals("PERMISSION_DENIED", e.serverCode());
      assertEquals(0, secondHits.get());
    }
    stop();
    try (PadlockClient padlock = client(409, "{\"error\":{\"code\":\"LEGAL_HOLD\",\"message\":\"a hold is in force\"}}")) {
      assertThrows(PadlockException.LegalHold.class, () -> padlock.shredKeychain("u1"));
    }
    stop();
    try (PadlockClient padlock = client(410, "{\"error\":{\"code\":\"KEYCHAIN_SHREDDED\",\"message\":\"gone\"}}")) {
      assertThrows(PadlockException.KeychainShredded.class, () -> padlock.getScheduledShred("u1", SCHEDULE_ID));
    }
    stop();
    try (PadlockClient padlock = client(401, "{\"error\":{\"code\":\"UNAUTHENTICATED\",\"message\":\"bad credential\"}}")) {
      PadlockException.PermissionDenied e = assertThrows(PadlockException.PermissionDenied.class, () -> padlock.getScheduledShred("u1", SCHEDULE_ID));
      assertEquals("UNAUTHENTICATED", e.serverCode());
      assertEquals(0, secondHits.get());
    }
  }

  @Test
  void reasonsNameWhatWentWrong() throws Exception {
    try (PadlockClient padlock = client(200, "not json")) {
      second.stop(0);
      second = null;
      PadlockException.Unavailable e = assertThrows(PadlockException.Unavailable.class, () -> padlock.getScheduledShred("u1", SCHEDULE_ID));
      assertEquals("HTTP_200 BAD_RESPONSE", e.attempts().get(0).reason());
      assertEquals("ECONNREFUSED", e.attempts().get(1).reason());
    }
  }
}
