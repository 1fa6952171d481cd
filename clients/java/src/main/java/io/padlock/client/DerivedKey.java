package io.padlock.client;

import java.security.MessageDigest;
import java.util.Arrays;
import javax.crypto.spec.SecretKeySpec;

/**
 * A 32-byte derived key. Never printed ({@link #toString()} is redacted), compared in constant
 * time, and wiped by {@link #wipe()}. The JCE keeps its own copy in the {@link SecretKeySpec} and
 * in each cipher's key schedule, which Java gives no way to clear; this class clears the copy it
 * owns, and the client drops every reference when it forgets a user.
 *
 * <pre>{@code
 * DerivedKey key = DerivedKey.copyOf(bytes); // ... key.wipe();
 * }</pre>
 */
public final class DerivedKey {
  public static final int LENGTH = 32;

  private final byte[] bytes;
  private volatile SecretKeySpec spec;
  private volatile boolean wiped;

  private DerivedKey(byte[] bytes) {
    this.bytes = bytes;
  }

  /** Takes ownership of {@code bytes} (32 bytes); the caller must not keep or change them. */
  static DerivedKey adopt(byte[] bytes) {
    if (bytes.length != LENGTH) throw new PadlockException.InvalidInput("key must be 32 bytes");
    return new DerivedKey(bytes);
  }

  /** A copy of {@code bytes}, which must be 32 bytes long. */
  public static DerivedKey copyOf(byte[] bytes) {
    return adopt(bytes.clone());
  }

  /** A copy of the key bytes; the caller owns it and should zero it when done. */
  public byte[] copyBytes() {
    checkLive();
    return bytes.clone();
  }

  /** An independent copy, wiped separately. */
  public DerivedKey copy() {
    checkLive();
    return new DerivedKey(bytes.clone());
  }

  /** The key as the JCE wants it, made once. */
  SecretKeySpec spec() {
    checkLive();
    SecretKeySpec s = spec;
    if (s == null) {
      s = new SecretKeySpec(bytes, "AES");
      spec = s;
    }
    return s;
  }

  /** Overwrites the bytes this object owns; later use throws. */
  public void wipe() {
    wiped = true;
    Arrays.fill(bytes, (byte) 0);
    spec = null;
  }

  public boolean isWiped() {
    return wiped;
  }

  private void checkLive() {
    if (wiped) throw new IllegalStateException("the key was wiped");
  }

  /** Constant-time comparison of the key bytes. */
  @Override
  public boolean equals(Object other) {
    return other instanceof DerivedKey k && !wiped && !k.wiped && MessageDigest.isEqual(bytes, k.bytes);
  }

  @Override
  public int hashCode() {
    return 0; // Not a hash of secret bytes.
  }

  @Override
  public String toString() {
    return "DerivedKey[redacted]";
  }
}
