package io.padlock.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import javax.net.ssl.SSLException;

/**
 * Failover across deployment groups (DESIGN.md section 7): a connection error, timeout, 429 or 5xx
 * from one group sends the request to the next; a 4xx with Padlock's error body is a final refusal
 * (any group would say the same). Padlock fails fast, so by default there are no retries: one
 * round over the groups within the deadline, each attempt within the timeout. Opt-in retries are
 * more rounds after a full-jitter backoff, paid from a token budget so that retries cannot
 * multiply the load during an outage.
 */
final class Endpoints implements AutoCloseable {
  static final ObjectMapper JSON = new ObjectMapper();

  /** {@code hedge}: a read, which may be sent to a second target while the first is slow. */
  record Request(String method, String path, byte[] body, boolean hedge) {}

  /** A final answer: a parsed 2xx body, or Padlock's refusal (status, code, message). */
  record Outcome<T>(T value, int status, String code, String message) {
    boolean ok() {
      return code == null;
    }
  }

  /** 4xx codes that say "wrong endpoint" (a proxy, a mistyped prefix), not "wrong request": fail over. */
  private static final Set<String> ENDPOINT_CODES = Set.of("ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED");

  private final PadlockClientOptions options;
  private final HttpClient http;
  private final ExecutorService executor;
  private final String authorization;
  private final ConcurrentHashMap<URI, Long> downUntilNanos = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicInteger> cursors = new ConcurrentHashMap<>();
  private final Set<CompletableFuture<?>> inFlight = ConcurrentHashMap.newKeySet();
  final Stats stats;
  private volatile boolean closed;

  Endpoints(PadlockClientOptions options, ExecutorService executor, Stats stats) {
    this.options = options;
    this.executor = executor;
    this.stats = stats;
    this.authorization = options.credential == null ? null : "Bearer " + options.credential;
    this.budget = options.retry == null ? 0 : options.retry.budgetMax();
    HttpClient.Builder builder = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(options.timeout)
        .followRedirects(HttpClient.Redirect.NEVER)
        .executor(executor);
    if (options.sslContext != null) builder.sslContext(options.sslContext);
    this.http = builder.build();
  }

  /**
   * Sends {@code request} until a group answers it within the deadline; throws Unavailable
   * otherwise. A failed attempt goes to the next target at once; a read ({@code hedge}) that has
   * not been answered after hedgeAfter also goes to the next target, and the first answer wins.
   */
  <T> Outcome<T> call(Request request, Function<JsonNode, T> parse) {
    long deadline = System.nanoTime() + options.deadline.toNanos();
    List<PadlockException.FailedAttempt> failures = new ArrayList<>();
    PadlockClientOptions.Retry retry = options.retry;
    if (retry != null) deposit(retry.budgetRatio());
    for (int round = 0; ; round++) {
      Outcome<T> outcome = round(request, parse, deadline, failures);
      if (outcome != null) return outcome;
      if (closed || retry == null || round >= retry.maxRetries() || Thread.currentThread().isInterrupted()) break;
      // Full jitter (a random wait up to the capped exponential), paid from the budget, within the deadline.
      long capNanos = Math.min(retry.maxDelay().toNanos(), retry.baseDelay().toNanos() << Math.min(round, 30));
      long delayNanos = (long) (ThreadLocalRandom.current().nextDouble() * capNanos);
      if (System.nanoTime() + delayNanos - deadline >= 0 || !withdraw()) break;
      stats.retries.increment();
      try {
        TimeUnit.NANOSECONDS.sleep(delayNanos);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    if (failures.isEmpty()) failures.add(new PadlockException.FailedAttempt("-", "-", closed ? "CLOSED" : "DEADLINE"));
    throw new PadlockException.Unavailable(
        closed ? "the client is closed" : "no Padlock endpoint group answered",
        failures.size() > 16 ? failures.subList(failures.size() - 16, failures.size()) : failures);
  }

  /** Retry tokens: a call adds budgetRatio, a retry spends 1, so retries add at most that share of load. */
  private double budget;

  private synchronized void deposit(double tokens) {
    budget = Math.min(options.retry.budgetMax(), budget + tokens);
  }

  private synchronized boolean withdraw() {
    if (budget < 1) return false;
    budget -= 1;
    return true;
  }

  /** One round over the groups; null when none answered (the failures are added to {@code failures}). */
  private <T> Outcome<T> round(Request request, Function<JsonNode, T> parse, long deadline, List<PadlockException.FailedAttempt> failures) {
    List<Target> plan = plan();
    BlockingQueue<Done> done = new LinkedBlockingQueue<>();
    List<CompletableFuture<HttpResponse<byte[]>>> running = new ArrayList<>();
    long hedgeNanos = request.hedge() && options.hedgeAfter != null ? options.hedgeAfter.toNanos() : -1;
    long hedgeAt = Long.MAX_VALUE;
    int next = 0;
    int active = 0;
    try {
      while (true) {
        long now = System.nanoTime();
        boolean canLaunch = next < plan.size() && !closed && deadline - now > 0;
        if (active == 0) {
          if (!canLaunch) break;
          running.add(launch(plan.get(next), request, Math.min(options.timeout.toNanos(), deadline - now), done, next > 0 ? stats.failovers : null));
          next++;
          active++;
          if (hedgeNanos >= 0) hedgeAt = System.nanoTime() + hedgeNanos;
          continue;
        }
        long wait = deadline - now;
        if (hedgeNanos >= 0 && canLaunch) wait = Math.min(wait, hedgeAt - now);
        Done d = done.poll(Math.max(wait, 0), TimeUnit.NANOSECONDS);
        now = System.nanoTime();
        if (d == null) {
          if (deadline - now <= 0 || closed) break;
          if (hedgeNanos >= 0 && next < plan.size() && hedgeAt - now <= 0) {
            running.add(launch(plan.get(next), request, Math.min(options.timeout.toNanos(), deadline - now), done, stats.hedges));
            next++;
            active++;
            hedgeAt = now + hedgeNanos;
          }
          continue;
        }
        active--;
        String reason = d.reason;
        if (d.reply != null) {
          Outcome<T> outcome = verdict(d.reply, parse);
          if (outcome != null) {
            downUntilNanos.remove(d.target.url);
            return outcome;
          }
          int status = d.reply.statusCode();
          reason = "HTTP_" + status + (status >= 200 && status < 300 ? " BAD_RESPONSE" : errorCode(d.reply.body()));
        }
        failures.add(new PadlockException.FailedAttempt(d.target.group, d.target.url.toString(), reason));
        if (!"CANCELLED".equals(reason)) downUntilNanos.put(d.target.url, now + options.down.toNanos());
        if (next < plan.size() && !closed && deadline - now > 0) {
          running.add(launch(plan.get(next), request, Math.min(options.timeout.toNanos(), deadline - now), done, stats.failovers));
          next++;
          active++;
          if (hedgeNanos >= 0) hedgeAt = now + hedgeNanos;
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      failures.add(new PadlockException.FailedAttempt("-", "-", "INTERRUPTED"));
    } finally {
      for (CompletableFuture<HttpResponse<byte[]>> f : running) {
        f.cancel(true);
        inFlight.remove(f);
      }
    }
    if (active > 0) failures.add(new PadlockException.FailedAttempt("-", "-", closed ? "CLOSED" : "DEADLINE"));
    return null;
  }

  /** One attempt's end: a reply, or the reason there is none. */
  private record Done(Target target, HttpResponse<byte[]> reply, String reason) {}

  private record Target(String group, URI url) {}

  /** Groups in order of preference, those with a healthy URL first; one URL from each, round robin. */
  private List<Target> plan() {
    long now = System.nanoTime();
    List<Target> healthy = new ArrayList<>();
    List<Target> down = new ArrayList<>();
    for (EndpointGroup group : options.groups) {
      List<URI> urls = group.urls();
      int start = Math.floorMod(cursors.computeIfAbsent(group.name(), n -> new AtomicInteger()).getAndIncrement(), urls.size());
      URI pick = null;
      for (int i = 0; i < urls.size() && pick == null; i++) {
        URI url = urls.get((start + i) % urls.size());
        Long until = downUntilNanos.get(url);
        if (until == null || until - now <= 0) pick = url;
      }
      if (pick != null) healthy.add(new Target(group.name(), pick));
      else down.add(new Target(group.name(), urls.get(start)));
    }
    healthy.addAll(down);
    return healthy;
  }

  private CompletableFuture<HttpResponse<byte[]>> launch(
      Target target, Request request, long timeoutNanos, BlockingQueue<Done> done, java.util.concurrent.atomic.LongAdder why) {
    if (why != null) why.increment();
    stats.requests.increment();
    HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(target.url + request.path()))
        .timeout(Duration.ofNanos(timeoutNanos))
        .header("accept", "application/json");
    if (authorization != null) builder.header("authorization", authorization);
    if (request.body() != null) {
      builder.header("content-type", "application/json");
      builder.method(request.method(), HttpRequest.BodyPublishers.ofByteArray(request.body()));
    } else {
      builder.method(request.method(), HttpRequest.BodyPublishers.noBody());
    }
    CompletableFuture<HttpResponse<byte[]>> future;
    try {
      future = http.sendAsync(builder.build(), HttpResponse.BodyHandlers.ofByteArray());
    } catch (RuntimeException e) {
      done.add(new Done(target, null, "REQUEST_ERROR"));
      return CompletableFuture.failedFuture(e);
    }
    inFlight.add(future);
    // The request timeout covers the headers only; this covers the body too.
    future.orTimeout(timeoutNanos, TimeUnit.NANOSECONDS).whenComplete((reply, error) -> {
      inFlight.remove(future);
      done.add(error == null ? new Done(target, reply, null) : new Done(target, null, reason(error)));
    });
    return future;
  }

  private static String reason(Throwable cause) {
    for (Throwable t = cause; t != null; t = t.getCause()) {
      if (t instanceof TimeoutException) return "TIMEOUT";
      if (t instanceof java.util.concurrent.CancellationException) return "CANCELLED";
      if (t instanceof HttpTimeoutException) return "TIMEOUT";
      if (t instanceof ConnectException) return "ECONNREFUSED";
      if (t instanceof SSLException) return "TLS";
    }
    if (cause instanceof IOException) return "IO " + cause.getClass().getSimpleName();
    return "REQUEST_ERROR";
  }

  private static <T> Outcome<T> verdict(HttpResponse<byte[]> reply, Function<JsonNode, T> parse) {
    int status = reply.statusCode();
    if (status >= 200 && status < 300) {
      try {
        return new Outcome<>(parse.apply(JSON.readTree(reply.body())), status, null, null);
      } catch (IOException | RuntimeException e) {
        return null; // A 2xx we cannot read: that endpoint failed.
      }
    }
    JsonNode error = errorBody(reply.body());
    if (status >= 400 && status < 500 && status != 429 && error != null && !ENDPOINT_CODES.contains(error.get("code").asText())) {
      return new Outcome<>(null, status, error.get("code").asText(), error.get("message").asText());
    }
    return null;
  }

  private static JsonNode errorBody(byte[] body) {
    try {
      JsonNode error = JSON.readTree(body).get("error");
      if (error != null && error.path("code").isTextual() && error.path("message").isTextual()) return error;
    } catch (IOException | RuntimeException e) {
      // Not Padlock's error shape: an endpoint failure.
    }
    return null;
  }

  private static String errorCode(byte[] body) {
    JsonNode error = errorBody(body);
    return error == null ? "" : " " + error.get("code").asText();
  }

  boolean isClosed() {
    return closed;
  }

  /** Stops sending; attempts in flight are cancelled and their calls fail with Unavailable. */
  @Override
  public void close() {
    closed = true;
    for (CompletableFuture<?> f : inFlight) f.cancel(true);
    inFlight.clear();
  }
}
