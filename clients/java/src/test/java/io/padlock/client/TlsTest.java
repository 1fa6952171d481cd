package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The client over HTTPS with mutual TLS against a real {@code padlock serve}: certificates made at
 * test time by the repository's scripts/testing/certs.mjs (openssl, EC P-256, PKCS#8 keys).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TlsTest {
  private Path pki;
  private PadlockProcesses deployment;
  private PadlockProcesses.Server server;
  private final List<PadlockClient> clients = new ArrayList<>();

  @BeforeAll
  void start() throws Exception {
    pki = Files.createTempDirectory("padlock-java-tls-");
    String script = "import { makeCa, issue, makeTestPki } from '" + Vectors.repo().resolve("scripts/testing/certs.mjs").toUri() + "';"
        + "const pki = makeTestPki(process.argv[1]);"
        + "issue(process.argv[1], pki.ca, 'app', { sans: ['URI:spiffe://test/app'], client: true });"
        + "issue(process.argv[1], pki.otherCa, 'stranger', { sans: ['URI:spiffe://test/app'], client: true });";
    Process p = new ProcessBuilder("node", "--input-type=module", "-e", script, pki.toString()).inheritIO().start();
    assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "certificates");
    String tls = "{\"certFile\":\"" + pki.resolve("server.crt") + "\",\"keyFile\":\"" + pki.resolve("server.key")
        + "\",\"clientCertificates\":{\"caFile\":\"" + pki.resolve("ca.crt") + "\",\"mode\":\"required\"}}";
    deployment = new PadlockProcesses(2, tls, List.of("--tls-identity", "spiffe://test/app"));
    server = deployment.start("tls");
  }

  @AfterAll
  void stop() throws Exception {
    for (PadlockClient c : clients) c.close();
    if (deployment != null) deployment.close();
    if (pki != null) {
      try (var paths = Files.walk(pki)) {
        paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
      }
    }
  }

  private String read(String name) throws Exception {
    return Files.readString(pki.resolve(name));
  }

  private PadlockClient client(String ca, String cert, String key) throws Exception {
    PadlockClientOptions.Builder b = PadlockClientOptions.builder()
        .group("tls", server.url)
        .credential(deployment.credentials.get("app"))
        .timeout(Duration.ofSeconds(10))
        .deadline(Duration.ofSeconds(20))
        .tlsCa(read(ca));
    if (cert != null) b.tlsClientCertificate(read(cert), read(key).toCharArray());
    PadlockClient c = new PadlockClient(b.build());
    clients.add(c);
    return c;
  }

  @Test
  void mutualTlsWithTheRightCaAndCertificate() throws Exception {
    PadlockClient padlock = client("ca.crt", "app.crt", "app.key");
    padlock.createKeychain("tls-alice");
    assertEquals("over tls", padlock.decryptText("tls-alice", padlock.encrypt("tls-alice", "profile", "over tls")));
  }

  @Test
  void refusesAServerItsCaDidNotIssue() throws Exception {
    PadlockClient padlock = client("other-ca.crt", "app.crt", "app.key");
    PadlockException.Unavailable e = assertThrows(PadlockException.Unavailable.class, () -> padlock.createKeychain("tls-bob"));
    assertEquals("TLS", e.attempts().get(0).reason());
  }

  @Test
  void withoutAClientCertificateTheServerRefuses() throws Exception {
    PadlockClient padlock = client("ca.crt", null, null);
    PadlockException e = assertThrows(PadlockException.class, () -> padlock.createKeychain("tls-carol"));
    assertTrue(e instanceof PadlockException.Unavailable || e instanceof PadlockException.PermissionDenied, e.toString());
  }

  @Test
  void checksTheTlsOptions() throws Exception {
    String ca = read("ca.crt");
    // A key that is not the certificate's.
    PadlockException.InvalidInput mismatch = assertThrows(PadlockException.InvalidInput.class, () -> PadlockClientOptions.builder()
        .group("tls", server.url).credential("x").tlsCa(ca).tlsClientCertificate(read("app.crt"), read("stranger.key").toCharArray()).build());
    assertEquals("the client key is not the private key of the client certificate", mismatch.getMessage());
    assertThrows(PadlockException.InvalidInput.class, () -> PadlockClientOptions.builder()
        .group("tls", server.url).credential("x").tlsCa("not a certificate").build());
    assertThrows(PadlockException.InvalidInput.class, () -> PadlockClientOptions.builder()
        .group("tls", server.url).credential("x").tlsCa(ca).tlsClientCertificate(read("app.crt"), "garbage".toCharArray()).build());
    // TLS options with no https: URL are a mistake, not ignored.
    assertThrows(PadlockException.InvalidInput.class, () -> PadlockClientOptions.builder()
        .group("plain", "http://127.0.0.1:1").credential("x").tlsCa(ca).build());
  }
}
