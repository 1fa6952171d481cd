package io.padlock.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Test helper: real Padlock processes ({@code node packages/cli/dist/main.js serve}) sharing one
 * SQLite store in a temp directory, with a KEK file and services made by {@code padlock service
 * create}, as packages/client/src/testing/padlock-processes.ts does. Needs {@code npm run build}.
 */
final class PadlockProcesses implements AutoCloseable {
  static final List<String> CATEGORIES = List.of("profile", "payments", "advertising");
  private static final ObjectMapper JSON = new ObjectMapper();

  final Path dir;
  final Path config;
  final int maxStalenessSeconds;
  final Map<String, String> credentials = new HashMap<>();
  private final List<Server> servers = new ArrayList<>();

  /** One running {@code padlock serve}. */
  static final class Server {
    final String name;
    final String url;
    final Process process;

    Server(String name, String url, Process process) {
      this.name = name;
      this.url = url;
      this.process = process;
    }

    void kill() {
      process.destroyForcibly();
      try {
        process.waitFor(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    /** Batch-get requests this process has answered, by its own /metrics. */
    long batchGets() throws Exception {
      String text = HttpClient.newHttpClient()
          .send(HttpRequest.newBuilder(URI.create(url + "/metrics")).build(), HttpResponse.BodyHandlers.ofString())
          .body();
      long total = 0;
      Pattern line = Pattern.compile("^padlock_http_requests_total\\{(.*)\\} (\\S+)$", Pattern.MULTILINE);
      Matcher m = line.matcher(text);
      while (m.find()) if (m.group(1).contains("route=\"/v1/keys/batch-get\"")) total += (long) Double.parseDouble(m.group(2));
      return total;
    }
  }

  static Path cli() {
    Path cli = Vectors.repo().resolve("packages/cli/dist/main.js");
    if (!Files.exists(cli)) throw new IllegalStateException(cli + " is missing: run npm run build at the repository root first");
    return cli;
  }

  PadlockProcesses(int maxStalenessSeconds) throws Exception {
    this(maxStalenessSeconds, null, List.of());
  }

  private final String scheme;

  /**
   * {@code listenTls}: the servers' config.listen.tls as JSON (then URLs are https:), or null;
   * {@code appExtra}: more arguments for {@code service create app} (e.g. --tls-identity).
   */
  PadlockProcesses(int maxStalenessSeconds, String listenTls, List<String> appExtra) throws Exception {
    this.maxStalenessSeconds = maxStalenessSeconds;
    this.scheme = listenTls == null ? "http" : "https";
    this.dir = Files.createTempDirectory("padlock-java-test-");
    byte[] kek = new byte[32];
    new SecureRandom().nextBytes(kek);
    Path kekFile = dir.resolve("kek.bin");
    Files.write(kekFile, kek);
    Files.setPosixFilePermissions(kekFile, PosixFilePermissions.fromString("rw-------"));
    this.config = dir.resolve("padlock.json");
    String configText = "{\"listen\":{\"host\":\"127.0.0.1\",\"port\":0" + (listenTls == null ? "" : ",\"tls\":" + listenTls) + "},"
        + "\"categories\":[\"profile\",\"payments\",\"advertising\"],"
        + "\"keks\":{\"active\":\"test-kek\",\"files\":[{\"kid\":\"test-kek\",\"path\":\"kek.bin\"}]},"
        + "\"store\":{\"kind\":\"sqlite\",\"sqlite\":{\"path\":\"padlock.db\",\"busyTimeoutMs\":5000}},"
        + "\"maxStalenessSeconds\":" + maxStalenessSeconds + ","
        + "\"limits\":{\"maxBatch\":500,\"deadlineMs\":5000},\"services\":{\"refreshSeconds\":1},"
        + "\"drainTimeoutMs\":1000,\"log\":{\"level\":\"info\",\"requests\":false}}";
    Files.writeString(config, configText);
    Files.setPosixFilePermissions(config, PosixFilePermissions.fromString("rw-------"));
    List<String> app = new ArrayList<>(List.of("--read", String.join(",", CATEGORIES), "--create", "--rotate", "--shred", "--hold"));
    app.addAll(appExtra);
    credentials.put("app", serviceCreate("app", app.toArray(new String[0])));
    credentials.put("reader", serviceCreate("reader", "--read", "profile"));
  }

  private String serviceCreate(String id, String... rights) throws Exception {
    List<String> args = new ArrayList<>(List.of("service", "create", id));
    args.addAll(List.of(rights));
    JsonNode out = JSON.readTree(cliRun(args.toArray(new String[0])));
    return out.get("credential").asText();
  }

  /** Runs the padlock CLI on this deployment's config; throws on a non-zero exit. */
  String cliRun(String... args) throws Exception {
    List<String> command = new ArrayList<>(List.of("node", cli().toString()));
    command.addAll(List.of(args));
    command.addAll(List.of("-c", config.toString()));
    Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    String stdout = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("padlock " + args[0] + " " + args[1] + " failed");
    }
    return stdout;
  }

  /** Starts {@code padlock serve} and waits for its "padlock listening" line. */
  Server start(String name) throws Exception {
    Process p = new ProcessBuilder("node", cli().toString(), "serve", "-c", config.toString())
        .redirectError(ProcessBuilder.Redirect.DISCARD)
        .start();
    CompletableFuture<Integer> port = new CompletableFuture<>();
    Thread reader = new Thread(() -> {
      try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = in.readLine()) != null; ) {
          if (port.isDone()) continue; // keep draining so the server never blocks on a full pipe
          try {
            JsonNode entry = JSON.readTree(line);
            if ("padlock listening".equals(entry.path("msg").asText()) && entry.path("port").isInt()) port.complete(entry.get("port").asInt());
          } catch (IOException notJson) {
            // Not a log line.
          }
        }
      } catch (IOException e) {
        // The process ended.
      }
      port.completeExceptionally(new IllegalStateException("padlock serve (" + name + ") exited before listening"));
    });
    reader.setDaemon(true);
    reader.start();
    Server server = new Server(name, scheme + "://127.0.0.1:" + port.get(60, TimeUnit.SECONDS), p);
    synchronized (servers) {
      servers.add(server);
    }
    return server;
  }

  @Override
  public void close() throws IOException {
    synchronized (servers) {
      for (Server s : servers) s.kill();
    }
    try (var paths = Files.walk(dir)) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }
}
