package io.padlock.client;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Derived keys by user: LRU, bounded by entries and by estimated bytes, each entry with its own expiry computed by the
 * caller from the server's maxAgeSeconds (so a shred reaches this cache within maxStaleness).
 * Entries are dropped, not wiped, on expiry or eviction: an operation on another thread may still
 * be between its lookup and its use. close() wipes everything once no operation may start.
 */
final class KeyCache {
  private record Entry(UserKeys keys, long expiresAtNanos) {}

  private final int maxEntries;
  private final long maxBytes;
  private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
  private long bytes;

  KeyCache(int maxEntries, long maxBytes) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
  }

  synchronized UserKeys get(String userId, long nowNanos) {
    Entry entry = entries.get(userId);
    if (entry == null) return null;
    if (entry.expiresAtNanos - nowNanos <= 0) {
      remove(userId);
      return null;
    }
    return entry.keys;
  }

  synchronized void put(UserKeys keys, long expiresAtNanos) {
    remove(keys.userId);
    if (keys.bytes > maxBytes) return;
    entries.put(keys.userId, new Entry(keys, expiresAtNanos));
    bytes += keys.bytes;
    Iterator<Map.Entry<String, Entry>> eldest = entries.entrySet().iterator();
    while ((entries.size() > maxEntries || bytes > maxBytes) && eldest.hasNext()) {
      bytes -= eldest.next().getValue().keys.bytes;
      eldest.remove();
    }
  }

  synchronized void remove(String userId) {
    Entry entry = entries.remove(userId);
    if (entry != null) bytes -= entry.keys.bytes;
  }

  synchronized long bytes() {
    return bytes;
  }

  synchronized int size() {
    return entries.size();
  }

  /** Drops expired entries so their key bytes do not linger until evicted. */
  synchronized void sweep(long nowNanos) {
    entries.values().removeIf(e -> {
      boolean expired = e.expiresAtNanos - nowNanos <= 0;
      if (expired) bytes -= e.keys.bytes;
      return expired;
    });
  }

  synchronized void clearAndWipe() {
    for (Entry e : entries.values()) e.keys.wipe();
    entries.clear();
    bytes = 0;
  }
}
