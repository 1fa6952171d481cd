package io.padlock.client;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * Client options, validated once by {@link Builder#build()} (exact messages, as the TypeScript
 * SDK's options.ts) and immutable after. Defaults follow the TypeScript SDK.
 *
 * <pre>{@code
 * PadlockClientOptions options = PadlockClientOptions.builder()
 *     .group("padlock", "https://padlock-1:8700", "https://padlock-2:8700")
 *     .group("padlock-mirror", "https://padlock-mirror:8700")
 *     .credential(System.getenv("PADLOCK_CREDENTIAL"))
 *     .tlsCa(Files.readString(Path.of("ca.pem")))
 *     .build();
 * }</pre>
 */
public final class PadlockClientOptions {
  private static final Pattern CREDENTIAL = Pattern.compile("[\\x21-\\x7e]{1,1024}");

  final List<EndpointGroup> groups;
  final String credential;
  final List<String> categories;
  final Duration timeout;
  final Duration deadline;
  final Duration down;
  /** Null: no hedging. */
  final Duration hedgeAfter;
  /** Null: no retries (the default: Padlock fails fast, callers decide). */
  final Retry retry;

  /**
   * Opt-in retries: after every group failed, wait a random time up to min(maxDelay, baseDelay *
   * 2^n) and go round the groups again, at most maxRetries times per call, each retry paid with a
   * token from a budget that every call refills by budgetRatio (up to budgetMax).
   */
  public record Retry(int maxRetries, double budgetRatio, int budgetMax, Duration baseDelay, Duration maxDelay) {
    /** The TypeScript SDK's defaults: 2 retries, 10 % extra load at most, a budget of 10, 20-200 ms. */
    public static Retry defaults() {
      return new Retry(2, 0.1, 10, Duration.ofMillis(20), Duration.ofMillis(200));
    }
  }
  final int maxUsersPerBatch;
  final int maxBodyBytes;
  final Duration batchDelay;
  final boolean cacheEnabled;
  final int cacheMaxEntries;
  final long cacheMaxBytes;
  final Duration cacheMaxTtl;
  /** Null when no URL is https: or no TLS option was given (the JDK's defaults then apply). */
  final SSLContext sslContext;

  private PadlockClientOptions(Builder b, SSLContext sslContext) {
    this.groups = List.copyOf(b.groups);
    this.credential = b.credential;
    this.categories = b.categories == null ? null : List.copyOf(b.categories);
    this.timeout = b.timeout;
    this.deadline = b.deadline == null ? (b.timeout.compareTo(Duration.ofSeconds(2)) > 0 ? b.timeout : Duration.ofSeconds(2)) : b.deadline;
    this.down = b.down;
    this.hedgeAfter = b.hedgeAfter;
    this.retry = b.retry;
    this.maxUsersPerBatch = b.maxUsersPerBatch;
    this.maxBodyBytes = b.maxBodyBytes;
    this.batchDelay = b.batchDelay;
    this.cacheEnabled = b.cacheEnabled;
    this.cacheMaxEntries = b.cacheMaxEntries;
    this.cacheMaxBytes = b.cacheMaxBytes;
    this.cacheMaxTtl = b.cacheMaxTtl;
    this.sslContext = sslContext;
  }

  public static Builder builder() {
    return new Builder();
  }

  public List<EndpointGroup> groups() {
    return groups;
  }

  public Duration timeout() {
    return timeout;
  }

  public Duration deadline() {
    return deadline;
  }

  @Override
  public String toString() {
    // The credential and the client key never print.
    return "PadlockClientOptions[groups=" + groups + ", categories=" + categories + ", timeout=" + timeout + ", deadline=" + deadline + "]";
  }

  public static final class Builder {
    private final List<EndpointGroup> groups = new ArrayList<>();
    private String credential;
    private List<String> categories;
    private Duration timeout = Duration.ofMillis(500);
    private Duration deadline;
    private Duration down = Duration.ofSeconds(1);
    private Duration hedgeAfter;
    private Retry retry;
    private int maxUsersPerBatch = 500;
    private int maxBodyBytes = 65536;
    private Duration batchDelay = Duration.ZERO;
    private boolean cacheEnabled = true;
    private int cacheMaxEntries = 10_000;
    private long cacheMaxBytes = 16L * 1024 * 1024;
    private Duration cacheMaxTtl = Duration.ofSeconds(60);
    private final List<String> caPems = new ArrayList<>();
    private String certPem;
    private char[] keyPem;

    private Builder() {}

    /** A deployment group, in order of preference: a failing group's requests go to the next. */
    public Builder group(String name, String... urls) {
      groups.add(EndpointGroup.of(name, urls));
      return this;
    }

    public Builder group(EndpointGroup group) {
      groups.add(group);
      return this;
    }

    /** The service credential, sent as {@code Authorization: Bearer <credential>}. */
    public Builder credential(String credential) {
      this.credential = credential;
      return this;
    }

    /** Categories to fetch keys for; default every category the service may read. */
    public Builder categories(Collection<String> categories) {
      this.categories = categories == null ? null : new ArrayList<>(categories);
      return this;
    }

    /** One HTTP attempt at most; default 500 ms, 1 ms to 60 s. */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /** A whole call, failover included; default max(2 s, timeout), up to 300 s. */
    public Builder deadline(Duration deadline) {
      this.deadline = deadline;
      return this;
    }

    /** After a failure an endpoint is tried last for this long; default 1 s. */
    public Builder down(Duration down) {
      this.down = down;
      return this;
    }

    /** Also send a read (a key lookup) to the next group when the first has not answered after this long; default off. */
    public Builder hedgeAfter(Duration hedgeAfter) {
      this.hedgeAfter = hedgeAfter;
      return this;
    }

    /** Turns on retries ({@link Retry#defaults()} or your own); default off. */
    public Builder retry(Retry retry) {
      this.retry = retry;
      return this;
    }

    /** User ids per batch-get at most (the server's limits.maxBatch); default 500. */
    public Builder maxUsersPerBatch(int maxUsers) {
      this.maxUsersPerBatch = maxUsers;
      return this;
    }

    /** Batch-get body bytes at most (the server's limits.maxBodyBytes); default 65536. */
    public Builder maxBodyBytes(int maxBodyBytes) {
      this.maxBodyBytes = maxBodyBytes;
      return this;
    }

    /** How long lookups are gathered before a batch-get is sent; default 0 (as soon as a thread is free). */
    public Builder batchDelay(Duration delay) {
      this.batchDelay = delay;
      return this;
    }

    /** Users whose keys are cached at most; default 10000. */
    public Builder cacheMaxEntries(int maxEntries) {
      this.cacheMaxEntries = maxEntries;
      return this;
    }

    /** Estimated bytes of cached keys at most; default 16 MiB. */
    public Builder cacheMaxBytes(long maxBytes) {
      this.cacheMaxBytes = maxBytes;
      return this;
    }

    /** A cap on how long keys are cached, below the server's maxAgeSeconds (which always applies); default 60 s. */
    public Builder cacheMaxTtl(Duration maxTtl) {
      this.cacheMaxTtl = maxTtl;
      return this;
    }

    /** No cache: every operation asks Padlock (lookups are still coalesced). */
    public Builder noCache() {
      this.cacheEnabled = false;
      return this;
    }

    /** A PEM CA certificate (or several) to trust for https: URLs instead of the JDK's store. */
    public Builder tlsCa(String pem) {
      caPems.add(pem);
      return this;
    }

    /** A PEM client certificate (then any intermediates) and its unencrypted PKCS#8 PEM key, for mutual TLS. */
    public Builder tlsClientCertificate(String certPem, char[] keyPem) {
      this.certPem = certPem;
      this.keyPem = keyPem == null ? null : keyPem.clone();
      return this;
    }

    public PadlockClientOptions build() {
      if (groups.isEmpty() || groups.size() > 16) {
        throw new PadlockException.InvalidInput("options.groups must hold 1 to 16 endpoint groups");
      }
      LinkedHashSet<String> names = new LinkedHashSet<>();
      for (EndpointGroup g : groups) {
        if (!names.add(g.name())) throw new PadlockException.InvalidInput("group name \"" + g.name() + "\" names another group too");
      }
      boolean https = groups.stream().flatMap(g -> g.urls().stream()).anyMatch(u -> "https".equals(u.getScheme()));
      boolean tlsGiven = !caPems.isEmpty() || certPem != null || keyPem != null;
      if (tlsGiven && !https) throw new PadlockException.InvalidInput("TLS options are set, but no URL is https:");
      if ((certPem == null) != (keyPem == null)) {
        throw new PadlockException.InvalidInput("tls client certificate and key go together: set both or neither");
      }
      if (credential == null && certPem == null) {
        throw new PadlockException.InvalidInput("options.credential is required, unless a client certificate authenticates the service on its own");
      }
      if (credential != null && !CREDENTIAL.matcher(credential).matches()) {
        throw new PadlockException.InvalidInput("options.credential must be 1-1024 printable ASCII characters without spaces");
      }
      if (categories != null) {
        if (categories.isEmpty()) throw new PadlockException.InvalidInput("options.categories must be a non-empty list of category names");
        for (String c : categories) {
          if (!Identifiers.isCategory(c)) throw new PadlockException.InvalidInput("options.categories: " + Identifiers.CATEGORY_MESSAGE);
        }
        if (new LinkedHashSet<>(categories).size() != categories.size()) {
          throw new PadlockException.InvalidInput("options.categories names a category twice");
        }
      }
      millis(timeout, "options.timeout", 1, 60_000);
      if (deadline != null) {
        millis(deadline, "options.deadline", 1, 300_000);
        if (deadline.compareTo(timeout) < 0) throw new PadlockException.InvalidInput("options.deadline must be at least options.timeout");
      }
      millis(down, "options.down", 0, 600_000);
      if (hedgeAfter != null) millis(hedgeAfter, "options.hedgeAfter", 1, 60_000);
      if (retry != null) {
        range(retry.maxRetries(), "options.retry.maxRetries", 0, 10);
        if (!(retry.budgetRatio() >= 0 && retry.budgetRatio() <= 1)) {
          throw new PadlockException.InvalidInput("options.retry.budgetRatio must be a number from 0 to 1");
        }
        range(retry.budgetMax(), "options.retry.budgetMax", 0, 1_000_000);
        millis(retry.baseDelay(), "options.retry.baseDelay", 0, 60_000);
        millis(retry.maxDelay(), "options.retry.maxDelay", 0, 60_000);
        if (retry.maxDelay().compareTo(retry.baseDelay()) < 0) {
          throw new PadlockException.InvalidInput("options.retry.maxDelay must be at least options.retry.baseDelay");
        }
      }
      millis(batchDelay, "options.batchDelay", 0, 1000);
      millis(cacheMaxTtl, "options.cacheMaxTtl", 1, 86_400_000);
      range(maxUsersPerBatch, "options.maxUsersPerBatch", 1, 10_000);
      range(maxBodyBytes, "options.maxBodyBytes", 1024, 16_777_216);
      range(cacheMaxEntries, "options.cacheMaxEntries", 1, 10_000_000);
      if (cacheMaxBytes < 1024 || cacheMaxBytes > (1L << 40)) {
        throw new PadlockException.InvalidInput("options.cacheMaxBytes must be an integer from 1024 to 1099511627776");
      }
      SSLContext ssl = https && tlsGiven ? sslContext() : null;
      if (keyPem != null) Arrays.fill(keyPem, '\0');
      keyPem = null;
      return new PadlockClientOptions(this, ssl);
    }

    private SSLContext sslContext() {
      try {
        TrustManagerFactory tmf = null;
        if (!caPems.isEmpty()) {
          KeyStore trust = KeyStore.getInstance("PKCS12");
          trust.load(null, null);
          int i = 0;
          for (String pem : caPems) {
            List<Certificate> certs = certificates(pem, "options.tlsCa must be PEM certificates");
            for (Certificate c : certs) trust.setCertificateEntry("ca-" + i++, c);
          }
          tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
          tmf.init(trust);
        }
        KeyManagerFactory kmf = null;
        if (certPem != null) {
          List<Certificate> chain = certificates(certPem, "the client certificate must be a PEM certificate");
          PrivateKey key = privateKey(keyPem);
          if (!matches(key, (X509Certificate) chain.get(0))) {
            throw new PadlockException.InvalidInput("the client key is not the private key of the client certificate");
          }
          KeyStore store = KeyStore.getInstance("PKCS12");
          store.load(null, null);
          char[] password = new char[0];
          store.setKeyEntry("client", key, password, chain.toArray(new Certificate[0]));
          kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
          kmf.init(store, password);
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf == null ? null : kmf.getKeyManagers(), tmf == null ? null : tmf.getTrustManagers(), null);
        return context;
      } catch (PadlockException e) {
        throw e;
      } catch (Exception e) {
        throw new PadlockException.InvalidInput("the TLS options could not be loaded: " + e.getClass().getSimpleName());
      }
    }

    private static List<Certificate> certificates(String pem, String message) {
      if (pem == null) throw new PadlockException.InvalidInput(message);
      try {
        Collection<? extends Certificate> certs = CertificateFactory.getInstance("X.509")
            .generateCertificates(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
        if (certs.isEmpty()) throw new PadlockException.InvalidInput(message);
        return new ArrayList<>(certs);
      } catch (PadlockException e) {
        throw e;
      } catch (Exception e) {
        throw new PadlockException.InvalidInput(message);
      }
    }

    private static final Pattern PKCS8 =
        Pattern.compile("-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\\s]+)-----END PRIVATE KEY-----");

    private static PrivateKey privateKey(char[] pem) {
      String message = "the client key must be an unencrypted PKCS#8 PEM private key (BEGIN PRIVATE KEY)";
      Matcher m = PKCS8.matcher(java.nio.CharBuffer.wrap(pem));
      if (!m.find()) throw new PadlockException.InvalidInput(message);
      byte[] der = Base64.getMimeDecoder().decode(m.group(1));
      try {
        for (String algorithm : new String[] {"EC", "RSA", "Ed25519", "RSASSA-PSS"}) {
          try {
            return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
          } catch (Exception tryNext) {
            // Not this algorithm.
          }
        }
        throw new PadlockException.InvalidInput(message);
      } finally {
        Arrays.fill(der, (byte) 0);
      }
    }

    /** Signs random bytes with the key and verifies with the certificate's public key. */
    private static boolean matches(PrivateKey key, X509Certificate cert) {
      String alg = switch (key.getAlgorithm()) {
        case "EC" -> "SHA256withECDSA";
        case "RSA" -> "SHA256withRSA";
        default -> key.getAlgorithm();
      };
      try {
        byte[] probe = new byte[32];
        new SecureRandom().nextBytes(probe);
        Signature signer = Signature.getInstance(alg);
        signer.initSign(key);
        signer.update(probe);
        byte[] signature = signer.sign();
        Signature verifier = Signature.getInstance(alg);
        verifier.initVerify(cert.getPublicKey());
        verifier.update(probe);
        return verifier.verify(signature);
      } catch (Exception e) {
        return false;
      }
    }

    private static void millis(Duration d, String where, long min, long max) {
      if (d == null || d.isNegative() || d.toMillis() < min || d.toMillis() > max) {
        throw new PadlockException.InvalidInput(where + " must be from " + min + " to " + max + " ms");
      }
    }

    private static void range(int value, String where, int min, int max) {
      if (value < min || value > max) throw new PadlockException.InvalidInput(where + " must be an integer from " + min + " to " + max);
    }
  }
}
