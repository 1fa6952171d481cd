package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** packages/client/vectors/envelope.json (docs/spec.md section 6): valid and must-fail vectors. */
class EnvelopeVectorsTest {
  private static final String FILE = "packages/client/vectors/envelope.json";

  @TestFactory
  Stream<DynamicTest> validVectors() throws Exception {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode v : Vectors.read(FILE).get("vectors")) {
      tests.add(DynamicTest.dynamicTest(v.get("name").asText(), () -> {
        String user = v.get("userId").asText();
        String category = v.get("category").asText();
        int version = v.get("version").asInt();
        DerivedKey key = DerivedKey.copyOf(Vectors.hex(v.get("key")));
        byte[] plaintext = Vectors.hex(v.get("plaintext"));
        assertArrayEquals(Vectors.hex(v.get("header")), Envelope.header(category, version));
        assertArrayEquals(Vectors.hex(v.get("aad")), Envelope.aadOf(category, version, user));
        byte[] sealed = Envelope.sealWithNonce(key, user, category, version, plaintext, Vectors.hex(v.get("nonce")));
        assertArrayEquals(Vectors.hex(v.get("envelope")), sealed);
        byte[] opened = Envelope.open(user, Vectors.hex(v.get("envelope")),
            (c, ver) -> c.equals(category) && ver == version ? key : null);
        assertArrayEquals(plaintext, opened);
        assertEquals(new Envelope.Header(category, version), Envelope.readHeader(sealed));
        // Random nonces: two seals differ, both open.
        byte[] a = Envelope.seal(key, user, category, version, plaintext);
        byte[] b = Envelope.seal(key, user, category, version, plaintext);
        assertTrue(!java.util.Arrays.equals(a, b));
        assertArrayEquals(plaintext, Envelope.open(user, a, (c, ver) -> key));
      }));
    }
    assertEquals(10, tests.size(), "the file's valid vectors");
    return tests.stream();
  }

  @TestFactory
  Stream<DynamicTest> invalidVectorsFail() throws Exception {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode v : Vectors.read(FILE).get("invalid")) {
      tests.add(DynamicTest.dynamicTest(v.get("name").asText(), () -> {
        List<Object[]> keys = new ArrayList<>();
        for (JsonNode k : v.get("keys")) {
          keys.add(new Object[] {k.get("category").asText(), k.get("version").asInt(), DerivedKey.copyOf(Vectors.hex(k.get("key")))});
        }
        Envelope.KeyResolver resolver = (c, ver) -> {
          for (Object[] k : keys) if (k[0].equals(c) && (int) k[1] == ver) return (DerivedKey) k[2];
          return null;
        };
        PadlockException e = assertThrows(PadlockException.DecryptionFailed.class,
            () -> Envelope.open(v.get("userId").asText(), Vectors.hex(v.get("envelope")), resolver));
        assertEquals("decryption failed", e.getMessage());
      }));
    }
    assertEquals(15, tests.size(), "the file's invalid vectors");
    return tests.stream();
  }

  /** Every single-byte change and every truncation of a valid envelope fails, with one error. */
  @Test
  void everyFlippedByteAndEveryCutFails() throws Exception {
    JsonNode v = Vectors.read(FILE).get("vectors").get(1);
    DerivedKey key = DerivedKey.copyOf(Vectors.hex(v.get("key")));
    byte[] envelope = Vectors.hex(v.get("envelope"));
    String user = v.get("userId").asText();
    for (int i = 0; i < envelope.length; i++) {
      for (int bit = 0; bit < 8; bit++) {
        byte[] changed = envelope.clone();
        changed[i] ^= (byte) (1 << bit);
        assertThrows(PadlockException.DecryptionFailed.class, () -> Envelope.open(user, changed, (c, ver) -> key), "byte " + i);
      }
    }
    for (int len = 0; len < envelope.length; len++) {
      byte[] cut = java.util.Arrays.copyOf(envelope, len);
      assertThrows(PadlockException.DecryptionFailed.class, () -> Envelope.open(user, cut, (c, ver) -> key), "length " + len);
    }
  }

  /** Nonces from the per-thread pools never repeat, across refills and threads. */
  @Test
  void noncesDoNotRepeat() throws Exception {
    DerivedKey key = DerivedKey.copyOf(new byte[32]);
    java.util.Set<String> nonces = java.util.concurrent.ConcurrentHashMap.newKeySet();
    Runnable seal = () -> {
      for (int i = 0; i < 3000; i++) {
        byte[] e = Envelope.seal(key, "u1", "profile", 1, new byte[0]);
        nonces.add(Vectors.HEX.formatHex(e, 13, 25));
      }
    };
    Thread a = new Thread(seal);
    Thread b = new Thread(seal);
    a.start();
    b.start();
    a.join();
    b.join();
    assertEquals(6000, nonces.size());
  }

  /** Random and half-valid inputs fail as DecryptionFailed only: no other exception escapes the parser. */
  @Test
  void randomInputsOnlyEverFailAsDecryptionFailed() {
    java.util.Random random = new java.util.Random(20261204);
    DerivedKey key = DerivedKey.copyOf(new byte[32]);
    byte[] valid = Envelope.seal(key, "u1", "profile", 1, new byte[5]);
    for (int i = 0; i < 20_000; i++) {
      byte[] input = new byte[random.nextInt(64)];
      random.nextBytes(input);
      if (i % 2 == 0 && input.length > 12) {
        System.arraycopy(valid, 0, input, 0, Math.min(13, input.length)); // a valid header, random rest
      }
      assertThrows(PadlockException.DecryptionFailed.class, () -> Envelope.open("u1", input, (c, v) -> key));
    }
  }

  @Test
  void headerParserRefusesMalformedHeaders() {
    byte[] ok = Envelope.seal(DerivedKey.copyOf(new byte[32]), "u1", "profile", 7, new byte[0]);
    assertEquals(new Envelope.Header("profile", 7), Envelope.readHeader(ok));
    assertNull(Envelope.readHeader(null));
    assertNull(Envelope.readHeader(new byte[0]));
    byte[] badCategory = ok.clone();
    badCategory[2] = 'P'; // upper case is outside the category grammar
    assertNull(Envelope.readHeader(badCategory));
    byte[] longCategory = ok.clone();
    longCategory[1] = 33;
    assertNull(Envelope.readHeader(longCategory));
    byte[] bigVersion = ok.clone();
    bigVersion[2 + 7] = (byte) 0x80; // version >= 2^31
    assertNull(Envelope.readHeader(bigVersion));
  }

  @Test
  void sealRefusesBadInput() {
    DerivedKey key = DerivedKey.copyOf(new byte[32]);
    assertThrows(PadlockException.InvalidInput.class, () -> Envelope.seal(key, "-bad", "profile", 1, new byte[0]));
    assertThrows(PadlockException.InvalidInput.class, () -> Envelope.seal(key, "u1", "Profile", 1, new byte[0]));
    assertThrows(PadlockException.InvalidInput.class, () -> Envelope.seal(key, "u1", "profile", 0, new byte[0]));
    assertThrows(PadlockException.InvalidInput.class, () -> Envelope.seal(key, "u1", "profile", 1, null));
    assertThrows(PadlockException.InvalidInput.class, () -> DerivedKey.copyOf(new byte[31]));
  }

  @Test
  void keysNeverPrintAndWipe() {
    byte[] bytes = new byte[32];
    java.util.Arrays.fill(bytes, (byte) 0x41);
    DerivedKey key = DerivedKey.copyOf(bytes);
    assertEquals("DerivedKey[redacted]", key.toString());
    assertEquals(key, DerivedKey.copyOf(bytes));
    key.wipe();
    assertTrue(key.isWiped());
    assertThrows(IllegalStateException.class, key::copyBytes);
    assertThrows(PadlockException.DecryptionFailed.class,
        () -> Envelope.open("u1", Envelope.seal(DerivedKey.copyOf(bytes), "u1", "profile", 1, new byte[1]), (c, v) -> key));
  }
}
