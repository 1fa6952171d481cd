package io.padlock.client.tools;

import io.padlock.client.PadlockClient;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The bench of INTEROP.md: on one thread, keys cached, encrypts and decrypts of 1 KiB per second
 * (each for S seconds after a warm-up), then the bulk call over N records, one per user, with a
 * cold cache, repeated for S seconds. Prints one JSON line.
 */
public final class Bench {
  private Bench() {}

  public static void main(String[] args) throws Exception {
    int users = 100;
    String prefix = "bench-";
    String category = "profile";
    double seconds = 5;
    for (int i = 0; i + 1 < args.length; i += 2) {
      switch (args[i]) {
        case "--users" -> users = Integer.parseInt(args[i + 1]);
        case "--user-prefix" -> prefix = args[i + 1];
        case "--category" -> category = args[i + 1];
        case "--seconds" -> seconds = Double.parseDouble(args[i + 1]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (args.length % 2 != 0) throw new IllegalArgumentException("arguments come in pairs");
    long window = (long) (seconds * 1e9);
    byte[] kib = new byte[1024];
    new java.util.Random(1).nextBytes(kib);
    try (PadlockClient padlock = new PadlockClient(Env.options())) {
      String user = prefix + "0";
      byte[] sealed = padlock.encrypt(user, category, kib);
      // Warm-up: the JIT compiles the hot paths before anything is timed.
      long warm = System.nanoTime() + Math.min(window, 2_000_000_000L);
      while (System.nanoTime() < warm) padlock.decrypt(user, padlock.encrypt(user, category, kib));

      // Every result is read into `sink`, so the JIT cannot drop an operation as unused.
      int sink = 0;
      long n = 0;
      long start = System.nanoTime();
      long elapsed;
      do {
        for (int i = 0; i < 256; i++) sink ^= padlock.encrypt(user, category, kib)[20];
        n += 256;
        elapsed = System.nanoTime() - start;
      } while (elapsed < window);
      double encryptPerS = n / (elapsed / 1e9);

      n = 0;
      start = System.nanoTime();
      do {
        for (int i = 0; i < 256; i++) sink ^= padlock.decrypt(user, sealed)[i];
        n += 256;
        elapsed = System.nanoTime() - start;
      } while (elapsed < window);
      double decryptPerS = n / (elapsed / 1e9);

      List<PadlockClient.BulkRecord> records = new ArrayList<>(users);
      for (int u = 0; u < users; u++) {
        String id = prefix + u;
        records.add(new PadlockClient.BulkRecord(id, padlock.encrypt(id, category, kib)));
      }
      padlock.bulkDecrypt(records); // warm-up pass
      // bulkDecrypt never reads the cache: every pass fetches its users' keys (cold).
      n = 0;
      start = System.nanoTime();
      do {
        for (PadlockClient.BulkResult r : padlock.bulkDecrypt(records)) {
          if (!r.ok()) throw new IllegalStateException("bulk record failed: " + r.error().code());
        }
        n += users;
        elapsed = System.nanoTime() - start;
      } while (elapsed < window);
      double bulkPerS = n / (elapsed / 1e9);
      System.out.println(String.format(Locale.ROOT,
          "{\"client\":\"java\",\"encrypt_1k_per_s\":%.0f,\"decrypt_1k_per_s\":%.0f,\"bulk_users_per_s\":%.0f}",
          encryptPerS, decryptPerS, bulkPerS));
      if (sink == Integer.MIN_VALUE) System.err.println("sink " + sink);
    }
  }
}
