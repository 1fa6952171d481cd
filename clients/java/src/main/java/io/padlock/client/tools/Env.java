package io.padlock.client.tools;

import io.padlock.client.PadlockClientOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** The client options of docs INTEROP.md, from PADLOCK_INTEROP_* environment variables. */
final class Env {
  private Env() {}

  static PadlockClientOptions options() throws IOException {
    String urls = System.getenv("PADLOCK_INTEROP_URLS");
    if (urls == null || urls.isBlank()) throw new IllegalArgumentException("PADLOCK_INTEROP_URLS is not set");
    PadlockClientOptions.Builder b = PadlockClientOptions.builder()
        .group("padlock", urls.split(","))
        .credential(System.getenv("PADLOCK_INTEROP_CREDENTIAL"))
        .timeout(Duration.ofSeconds(5))
        .deadline(Duration.ofSeconds(10));
    String mirror = System.getenv("PADLOCK_INTEROP_MIRROR_URLS");
    if (mirror != null && !mirror.isBlank()) b.group("padlock-mirror", mirror.split(","));
    String ca = System.getenv("PADLOCK_INTEROP_CA");
    if (ca != null && !ca.isBlank()) b.tlsCa(Files.readString(Path.of(ca)));
    String cacheMs = System.getenv("PADLOCK_INTEROP_CACHE_MS");
    if (cacheMs != null && !cacheMs.isBlank()) {
      long ms = Long.parseLong(cacheMs.trim());
      if (ms == 0) b.noCache(); // every operation asks Padlock
      else b.cacheMaxTtl(Duration.ofMillis(ms));
    }
    return b.build();
  }
}
