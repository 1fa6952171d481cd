package io.padlock.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;

/** Reads the repository's JSON vectors from the same files the TypeScript tests read. */
final class Vectors {
  static final HexFormat HEX = HexFormat.of();

  private Vectors() {}

  static Path repo() {
    return Path.of(System.getProperty("padlock.repo", "../..")).toAbsolutePath().normalize();
  }

  /** shared/ beside the repository root, as CI lays it; -Dpadlock.shared=DIR elsewhere (a worktree). */
  static Path shared() {
    String dir = System.getProperty("padlock.shared", "");
    return dir.isEmpty() ? repo().resolve("../shared").normalize() : Path.of(dir);
  }

  static JsonNode read(String relative) throws IOException {
    Path file = relative.startsWith("../shared/")
        ? shared().resolve(relative.substring("../shared/".length()))
        : repo().resolve(relative).normalize();
    if (!Files.isReadable(file)) {
      throw new IOException("vectors missing or unreadable at " + file
          + (relative.startsWith("../shared/") ? ": CI lays shared/ beside the repository root; elsewhere pass -Dpadlock.shared=DIR" : ""));
    }
    return new ObjectMapper().readTree(Files.readAllBytes(file));
  }

  static byte[] hex(JsonNode node) {
    return HEX.parseHex(node.asText());
  }
}
