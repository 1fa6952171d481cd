package io.padlock.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;

/**
 * The envelope of docs/spec.md section 6: a self-describing AES-256-GCM ciphertext, byte for byte
 * the TypeScript SDK's. Pure: no I/O, no key lookup.
 *
 * <pre>
 *   header   = u8(0x01) || u8(len(category)) || category || u32(version)
 *   envelope = header || nonce(12) || ciphertext || tag(16)
 *   AAD      = header || lp(userId)
 * </pre>
 */
public final class Envelope {
  public static final int FORMAT = 0x01;
  public static final int NONCE_LENGTH = 12;
  public static final int TAG_LENGTH = 16;
  private static final int MAX_CATEGORY_LENGTH = 32;

  /**
   * Nonces come from a per-thread pool of 256, refilled by one call to a NIST SP 800-90A DRBG
   * (the JDK's, seeded by the system): about 35 ns a nonce here instead of about 1 us for a
   * 12-byte call to the default NativePRNG. Each pool belongs to one thread, each nonce is used once.
   */
  private static final SecureRandom RANDOM = drbg();
  private static final int NONCES_PER_REFILL = 256;
  private static final ThreadLocal<NoncePool> NONCES = ThreadLocal.withInitial(NoncePool::new);

  private static final class NoncePool {
    final byte[] bytes = new byte[NONCE_LENGTH * NONCES_PER_REFILL];
    int offset = bytes.length;

    void next(byte[] out, int at) {
      if (offset == bytes.length) {
        RANDOM.nextBytes(bytes);
        offset = 0;
      }
      System.arraycopy(bytes, offset, out, at, NONCE_LENGTH);
      Arrays.fill(bytes, offset, offset + NONCE_LENGTH, (byte) 0);
      offset += NONCE_LENGTH;
    }
  }

  private static SecureRandom drbg() {
    try {
      return SecureRandom.getInstance("DRBG");
    } catch (GeneralSecurityException e) {
      return new SecureRandom();
    }
  }
  private static final ThreadLocal<Cipher> CIPHER =
      ThreadLocal.withInitial(
          () -> {
            try {
              return Cipher.getInstance("AES/GCM/NoPadding");
            } catch (GeneralSecurityException e) {
              throw new IllegalStateException("AES/GCM is not available", e);
            }
          });

  private Envelope() {}

  /** What a header says, before anything is authenticated. */
  public record Header(String category, int version) {}

  /** Looks up the user's key for (category, version); null when there is none. */
  @FunctionalInterface
  public interface KeyResolver {
    DerivedKey keyFor(String category, int version);
  }

  /** Bytes added to the plaintext: 1 + 1 + len(category) + 4 + 12 + 16. */
  public static int overhead(String category) {
    return 2 + category.length() + 4 + NONCE_LENGTH + TAG_LENGTH;
  }

  /**
   * The category and version an envelope names, or null when it is not a well-formed envelope.
   * Not authenticated: use it to route or to find data under an old version, never to trust it.
   */
  public static Header readHeader(byte[] envelope) {
    if (envelope == null || envelope.length < 2 || (envelope[0] & 0xff) != FORMAT) return null;
    int c = envelope[1] & 0xff;
    if (c == 0 || c > MAX_CATEGORY_LENGTH) return null;
    if (envelope.length < 2 + c + 4 + NONCE_LENGTH + TAG_LENGTH) return null;
    String category = new String(envelope, 2, c, StandardCharsets.ISO_8859_1);
    long version = readU32(envelope, 2 + c);
    if (!Identifiers.isCategory(category) || !Identifiers.isVersion(version)) return null;
    return new Header(category, (int) version);
  }

  /** header || lp(userId). User ids are ASCII by grammar, so characters are bytes. */
  static byte[] aad(byte[] source, int headerLength, String userId) {
    byte[] out = new byte[headerLength + 2 + userId.length()];
    System.arraycopy(source, 0, out, 0, headerLength);
    out[headerLength] = (byte) (userId.length() >>> 8);
    out[headerLength + 1] = (byte) userId.length();
    for (int i = 0; i < userId.length(); i++) out[headerLength + 2 + i] = (byte) userId.charAt(i);
    return out;
  }

  /** The header of (category, version), for test vectors and tools. */
  public static byte[] header(String category, int version) {
    Identifiers.checkCategory(category);
    if (!Identifiers.isVersion(version)) throw new PadlockException.InvalidInput("version must be an integer from 1 to 2147483647");
    byte[] out = new byte[2 + category.length() + 4];
    writeHeader(out, category, version);
    return out;
  }

  /** The AAD of an envelope for a user, for test vectors. */
  public static byte[] aadOf(String category, int version, String userId) {
    byte[] header = header(category, version);
    return aad(header, header.length, Identifiers.checkUserId(userId));
  }

  /**
   * Encrypts {@code plaintext} for {@code userId} under the key of (category, version) with a fresh
   * random 12-byte nonce. A random nonce keeps one key within NIST SP 800-38D's bound only up to
   * 2^32 envelopes: rotate a category long before one user reaches that.
   */
  public static byte[] seal(DerivedKey key, String userId, String category, int version, byte[] plaintext) {
    byte[] nonce = new byte[NONCE_LENGTH];
    NONCES.get().next(nonce, 0);
    return sealWithNonce(key, userId, category, version, plaintext, nonce);
  }

  /** Deterministic seal for test vectors only: a nonce repeated under one key breaks GCM. */
  static byte[] sealWithNonce(
      DerivedKey key, String userId, String category, int version, byte[] plaintext, byte[] nonce) {
    Identifiers.checkUserId(userId);
    Identifiers.checkCategory(category);
    if (!Identifiers.isVersion(version)) throw new PadlockException.InvalidInput("version must be an integer from 1 to 2147483647");
    if (nonce.length != NONCE_LENGTH) throw new PadlockException.InvalidInput("nonce must be 12 bytes");
    if (plaintext == null) throw new PadlockException.InvalidInput("plaintext must not be null");
    int headerLength = 2 + category.length() + 4;
    byte[] out = new byte[headerLength + NONCE_LENGTH + plaintext.length + TAG_LENGTH];
    writeHeader(out, category, version);
    System.arraycopy(nonce, 0, out, headerLength, NONCE_LENGTH);
    Cipher cipher = CIPHER.get();
    try {
      cipher.init(Cipher.ENCRYPT_MODE, key.spec(), new GCMParameterSpec(TAG_LENGTH * 8, nonce));
      cipher.updateAAD(aad(out, headerLength, userId));
      cipher.doFinal(plaintext, 0, plaintext.length, out, headerLength + NONCE_LENGTH);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("AES-GCM encryption failed", e);
    }
    return out;
  }

  /**
   * Opens an envelope made by {@link #seal} for {@code userId}. Every failure, from a malformed
   * header to a bad tag, is one {@link PadlockException.DecryptionFailed}. The plaintext is
   * released only after the tag verifies (the JDK's GCM buffers it until then).
   */
  public static byte[] open(String userId, byte[] envelope, KeyResolver keys) {
    Identifiers.checkUserId(userId);
    Header header = readHeader(envelope);
    if (header == null) throw new PadlockException.DecryptionFailed();
    DerivedKey key = keys.keyFor(header.category(), header.version());
    if (key == null || key.isWiped()) throw new PadlockException.DecryptionFailed();
    int headerLength = 2 + header.category().length() + 4;
    Cipher cipher = CIPHER.get();
    try {
      // The tag length is fixed at 16 bytes: a shorter tag is never accepted.
      cipher.init(
          Cipher.DECRYPT_MODE,
          key.spec(),
          new GCMParameterSpec(TAG_LENGTH * 8, envelope, headerLength, NONCE_LENGTH));
      cipher.updateAAD(aad(envelope, headerLength, userId));
      int bodyStart = headerLength + NONCE_LENGTH;
      return cipher.doFinal(envelope, bodyStart, envelope.length - bodyStart);
    } catch (GeneralSecurityException | IllegalStateException e) {
      // A bad tag (AEADBadTagException) and anything else: one error, no cause (no oracle).
      throw new PadlockException.DecryptionFailed();
    }
  }

  private static void writeHeader(byte[] out, String category, int version) {
    out[0] = (byte) FORMAT;
    out[1] = (byte) category.length();
    for (int i = 0; i < category.length(); i++) out[2 + i] = (byte) category.charAt(i);
    int at = 2 + category.length();
    out[at] = (byte) (version >>> 24);
    out[at + 1] = (byte) (version >>> 16);
    out[at + 2] = (byte) (version >>> 8);
    out[at + 3] = (byte) version;
  }

  private static long readU32(byte[] b, int at) {
    return ((long) (b[at] & 0xff) << 24) | ((b[at + 1] & 0xff) << 16) | ((b[at + 2] & 0xff) << 8) | (b[at + 3] & 0xff);
  }

  static void zero(byte[] bytes) {
    if (bytes != null) Arrays.fill(bytes, (byte) 0);
  }
}
