package io.padlock.client;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Derived keys by user: LRU, bounded by entries, each entry with its own expiry computed by the
 * caller from the server's maxAgeSeconds (so a shred reaches this cache within maxStaleness).
 * Entries are dropped, not wiped, on expiry or eviction: an operation on another thread may still
 * be between its lookup and its use. close() wipes everything once no operation may start.
 */
final class KeyCache {
  private record Entry(UserKeys keys, long expiresAtNanos) {}

  private final int maxEntries;
  private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);

  KeyCache(int maxEntries) {
    this.maxEntries = maxEntries;
  }

  synchronized UserKeys get(String userId, long nowNanos) {
    Entry entry = entries.get(userId);
    if (entry == null) return null;
    if (entry.expiresAtNanos - nowNanos <= 0) {
      entries.remove(userId);
      return null;
    }
    return entry.keys;
  }

  synchronized void put(UserKeys keys, long expiresAtNanos) {
    entries.put(keys.userId, new Entry(keys, expiresAtNanos));
    Iterator<Map.Entry<String, Entry>> eldest = entries.entrySet().iterator();
    while (entries.size() > maxEntries && eldest.hasNext()) {
      eldest.next();
      eldest.remove();
    }
  }

  synchronized void remove(String userId) {
    entries.remove(userId);
  }

  synchronized int size() {
    return entries.size();
  }

  /** Drops expired entries so their key bytes do not linger until evicted. */
  synchronized void sweep(long nowNanos) {
    entries.values().removeIf(e -> e.expiresAtNanos - nowNanos <= 0);
  }

  synchronized void clearAndWipe() {
    for (Entry e : entries.values()) e.keys.wipe();
    entries.clear();
  }
}
