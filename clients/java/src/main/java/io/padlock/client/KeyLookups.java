package io.padlock.client;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Key lookups, coalesced: a lookup is answered from the cache, or joins the request already
 * queued or in flight for that user, or joins the queue. The queue goes out as one batch-get as
 * soon as a sender thread runs (or after batchDelay), at once when it reaches the batch limits.
 *
 * Cache expiry is counted from when the request was sent, not answered: the server's
 * maxAgeSeconds is measured from its own read, which comes later, so an entry never outlives the
 * deletion bound.
 */
final class KeyLookups {
  private record Queued(String userId, CompletableFuture<UserKeys> request) {}

  private final Function<List<String>, List<UserKeys>> fetch;
  private final Executor sender;
  private final ScheduledExecutorService scheduler;
  private final long delayNanos;
  private final KeyCache cache;
  private final long maxTtlNanos;
  private final Stats stats;
  private final int baseBodyBytes;
  private volatile int maxUsers;
  private volatile int maxBodyBytes;

  private final Map<String, CompletableFuture<UserKeys>> inFlight = new HashMap<>();
  private List<Queued> queue = new ArrayList<>();
  private int queueBytes;
  private boolean scheduled;
  /** Batch-gets in flight. Lookups queue while MAX_SENDING are out, so load gathers into batches. */
  private int sending;
  private static final int MAX_SENDING = 4;

  KeyLookups(Function<List<String>, List<UserKeys>> fetch, PadlockClientOptions options, Executor sender, ScheduledExecutorService scheduler, Stats stats) {
    this.fetch = fetch;
    this.sender = sender;
    this.scheduler = scheduler;
    this.delayNanos = options.batchDelay.toNanos();
    this.cache = options.cacheEnabled ? new KeyCache(options.cacheMaxEntries, options.cacheMaxBytes) : null;
    this.maxTtlNanos = options.cacheMaxTtl.toNanos();
    this.stats = stats;
    this.maxUsers = options.maxUsersPerBatch;
    this.maxBodyBytes = options.maxBodyBytes;
    this.baseBodyBytes = batchBody(List.of(), options.categories).length;
    this.queueBytes = baseBodyBytes;
  }

  /** The body of a batch-get; user ids and categories are plain ASCII by grammar, nothing to escape. */
  static byte[] batchBody(List<String> userIds, List<String> categories) {
    StringBuilder out = new StringBuilder(16 + userIds.size() * 24).append("{\"userIds\":[");
    for (int i = 0; i < userIds.size(); i++) out.append(i == 0 ? "\"" : ",\"").append(userIds.get(i)).append('"');
    out.append(']');
    if (categories != null) {
      out.append(",\"categories\":[");
      for (int i = 0; i < categories.size(); i++) out.append(i == 0 ? "\"" : ",\"").append(categories.get(i)).append('"');
      out.append(']');
    }
    return out.append('}').toString().getBytes(java.nio.charset.StandardCharsets.US_ASCII);
  }

  int maxUsers() {
    return maxUsers;
  }

  int maxBodyBytes() {
    return maxBodyBytes;
  }

  int baseBodyBytes() {
    return baseBodyBytes;
  }

  int cacheEntries() {
    return cache == null ? 0 : cache.size();
  }

  long cacheBytes() {
    return cache == null ? 0 : cache.bytes();
  }

  /** The cached keys of the user, or null. */
  UserKeys cached(String userId) {
    stats.lookups.increment();
    if (cache == null) return null;
    UserKeys keys = cache.get(userId, System.nanoTime());
    if (keys != null) stats.cacheHits.increment();
    return keys;
  }

  /** A request for the user's keys, shared with every other lookup of that user in flight. */
  CompletableFuture<UserKeys> request(String userId) {
    List<Queued> sendNow = null;
    CompletableFuture<UserKeys> request;
    synchronized (this) {
      CompletableFuture<UserKeys> joined = inFlight.get(userId);
      if (joined != null) {
        stats.coalesced.increment();
        return joined;
      }
      request = new CompletableFuture<>();
      inFlight.put(userId, request);
      int bytes = userId.length() + 3;
      if (!queue.isEmpty() && (queue.size() >= maxUsers || queueBytes + bytes > maxBodyBytes)) {
        sendNow = drain();
        sending++;
      }
      queue.add(new Queued(userId, request));
      queueBytes += bytes;
      if (queue.size() >= maxUsers) {
        List<Queued> full = drain();
        sending++;
        if (sendNow == null) sendNow = full;
        else {
          List<Queued> first = sendNow;
          execute(() -> send(first), first);
          sendNow = full;
        }
      } else if (!scheduled && sending < MAX_SENDING) {
        scheduled = true;
        try {
          if (delayNanos == 0) sender.execute(this::sendQueued);
          else scheduler.schedule(() -> execute(this::sendQueued, List.of()), delayNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException closed) {
          scheduled = false;
          failQueued(drain());
        }
      }
    }
    if (sendNow != null) {
      List<Queued> batch = sendNow;
      execute(() -> send(batch), batch);
    }
    return request;
  }

  /** Caches keys obtained otherwise (a create's answer), sent at {@code sentAtNanos}. */
  void prime(UserKeys keys, long sentAtNanos) {
    synchronized (this) {
      if (inFlight.containsKey(keys.userId)) return;
    }
    store(keys, sentAtNanos);
  }

  /** Forgets the user's cached keys; a request in flight still answers its waiters but is not cached. */
  void invalidate(String userId) {
    if (cache != null) cache.remove(userId);
    synchronized (this) {
      inFlight.remove(userId);
    }
  }

  /** After a server refused a batch as too large: later batches fit at the first attempt. */
  void lowerLimits(int users, int bodyBytes) {
    if (users > 0) maxUsers = Math.max(1, Math.min(maxUsers, users));
    if (bodyBytes > 0) maxBodyBytes = Math.max(baseBodyBytes + 131, Math.min(maxBodyBytes, bodyBytes));
  }

  void sweep() {
    if (cache != null) cache.sweep(System.nanoTime());
  }

  void close() {
    if (cache != null) cache.clearAndWipe();
  }

  /** Runs a send; once the client is closed, fails the batch's lookups (and the queue's) instead. */
  private void execute(Runnable send, List<Queued> batch) {
    try {
      sender.execute(send);
    } catch (RejectedExecutionException closed) {
      List<Queued> queued;
      synchronized (this) {
        queued = drain();
        scheduled = false;
      }
      failQueued(batch);
      failQueued(queued);
    }
  }

  private void failQueued(List<Queued> batch) {
    for (Queued q : batch) {
      settle(q);
      q.request.completeExceptionally(new PadlockException.Unavailable("the client is closed", List.of()));
    }
  }

  private List<Queued> drain() {
    List<Queued> out = queue;
    queue = new ArrayList<>();
    queueBytes = baseBodyBytes;
    return out;
  }

  private void sendQueued() {
    List<Queued> batch;
    synchronized (this) {
      scheduled = false;
      batch = drain();
      if (batch.isEmpty()) return;
      sending++;
    }
    send(batch);
  }

  private void send(List<Queued> batch) {
    try {
      sendOne(batch);
    } finally {
      synchronized (this) {
        sending--;
        // Lookups that queued while batches were out go now, as one batch.
        if (!queue.isEmpty() && !scheduled) {
          scheduled = true;
          execute(this::sendQueued, List.of());
        }
      }
    }
  }

  private void sendOne(List<Queued> batch) {
    List<String> userIds = new ArrayList<>(batch.size());
    for (Queued q : batch) userIds.add(q.userId);
    long sentAt = System.nanoTime();
    stats.batches.increment();
    List<UserKeys> results;
    try {
      results = fetch.apply(userIds);
    } catch (RuntimeException e) {
      for (Queued q : batch) {
        settle(q);
        q.request.completeExceptionally(e);
      }
      return;
    }
    for (int i = 0; i < batch.size(); i++) {
      Queued q = batch.get(i);
      UserKeys keys = results.get(i);
      // Not current when invalidate() ran meanwhile: the waiters get their answer, the cache nothing.
      if (settle(q)) store(keys, sentAt);
      q.request.complete(keys);
    }
  }

  private synchronized boolean settle(Queued q) {
    boolean current = inFlight.get(q.userId) == q.request;
    if (current) inFlight.remove(q.userId);
    return current;
  }

  private void store(UserKeys keys, long sentAtNanos) {
    if (cache == null || keys.status != UserKeys.Status.OK) return;
    long ttl = Math.min(keys.maxAgeSeconds * 1_000_000_000L, maxTtlNanos);
    if (ttl > 0) cache.put(keys, sentAtNanos + ttl);
  }
}
