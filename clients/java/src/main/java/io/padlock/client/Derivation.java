package io.padlock.client;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import org.bouncycastle.crypto.digests.SHA256Digest;
import org.bouncycastle.crypto.generators.HKDFBytesGenerator;
import org.bouncycastle.crypto.params.HKDFParameters;

/**
 * Key derivation of docs/spec.md section 3, for tools and checks that hold a root key (the client
 * itself only receives derived keys from Padlock):
 *
 * <pre>
 *   info       = "padlock/v1/derive" || lp(serviceId) || lp(category) || u32(version) || lp(userId)
 *   derivedKey = HKDF-SHA256(IKM = root key, salt = service derivation key, info, L = 32)
 * </pre>
 *
 * HKDF is Bouncy Castle's (RFC 5869), checked against RFC 5869 and Wycheproof vectors.
 */
public final class Derivation {
  private static final byte[] LABEL = "padlock/v1/derive".getBytes(StandardCharsets.US_ASCII);
  private static final int MAX_OUTPUT = 255 * 32;

  private Derivation() {}

  /** The HKDF info of a derived key. */
  public static byte[] info(String serviceId, String category, int version, String userId) {
    if (!Identifiers.isServiceId(serviceId)) throw new PadlockException.InvalidInput("serviceId does not match the service id grammar");
    Identifiers.checkCategory(category);
    Identifiers.checkUserId(userId);
    if (!Identifiers.isVersion(version)) throw new PadlockException.InvalidInput("version must be an integer from 1 to 2147483647");
    ByteArrayOutputStream out = new ByteArrayOutputStream(LABEL.length + 80);
    out.writeBytes(LABEL);
    lp(out, serviceId);
    lp(out, category);
    out.write(version >>> 24);
    out.write(version >>> 16);
    out.write(version >>> 8);
    out.write(version);
    lp(out, userId);
    return out.toByteArray();
  }

  /** The key Padlock hands {@code serviceId} for (user, category, version). */
  public static DerivedKey derive(
      byte[] rootKey, byte[] serviceKey, String serviceId, String category, int version, String userId) {
    if (rootKey.length != 32 || serviceKey.length != 32) throw new PadlockException.InvalidInput("root and service keys must be 32 bytes");
    return DerivedKey.adopt(hkdfSha256(rootKey, serviceKey, info(serviceId, category, version, userId), 32));
  }

  /** HKDF-SHA256 (RFC 5869); an empty salt means 32 zero bytes (section 2.2). */
  public static byte[] hkdfSha256(byte[] ikm, byte[] salt, byte[] info, int length) {
    if (length < 0 || length > MAX_OUTPUT) {
      throw new PadlockException.InvalidInput("HKDF-SHA256 output length must be from 0 to " + MAX_OUTPUT);
    }
    byte[] okm = new byte[length];
    if (length == 0) return okm;
    HKDFBytesGenerator hkdf = new HKDFBytesGenerator(SHA256Digest.newInstance());
    hkdf.init(new HKDFParameters(ikm, salt.length == 0 ? null : salt, info));
    hkdf.generateBytes(okm, 0, length);
    return okm;
  }

  private static void lp(ByteArrayOutputStream out, String value) {
    byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
    out.write(bytes.length >>> 8);
    out.write(bytes.length);
    out.writeBytes(bytes);
  }
}
