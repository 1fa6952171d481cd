package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * packages/core/vectors/derive.json (docs/spec.md section 3), RFC 5869's SHA-256 cases and the
 * Wycheproof HKDF-SHA256 vectors (../shared/vectors/wycheproof), with a second HKDF built on the
 * JDK's HMAC as a differential check.
 */
class DerivationVectorsTest {
  @TestFactory
  Stream<DynamicTest> deriveJson() throws Exception {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode v : Vectors.read("packages/core/vectors/derive.json").get("vectors")) {
      tests.add(DynamicTest.dynamicTest(v.get("name").asText(), () -> {
        String service = v.get("serviceId").asText();
        String category = v.get("category").asText();
        int version = v.get("version").asInt();
        String user = v.get("userId").asText();
        byte[] info = Derivation.info(service, category, version, user);
        assertArrayEquals(Vectors.hex(v.get("info")), info);
        DerivedKey derived = Derivation.derive(Vectors.hex(v.get("rootKey")), Vectors.hex(v.get("serviceKey")), service, category, version, user);
        assertArrayEquals(Vectors.hex(v.get("derivedKey")), derived.copyBytes());
        assertArrayEquals(Vectors.hex(v.get("derivedKey")), jdkHkdf(Vectors.hex(v.get("rootKey")), Vectors.hex(v.get("serviceKey")), info, 32));
      }));
    }
    assertEquals(10, tests.size());
    return tests.stream();
  }

  @Test
  void rfc5869Sha256Cases() {
    HexFormat hex = HexFormat.of();
    // RFC 5869 appendix A.1 and A.3 (A.3: empty salt and info).
    assertArrayEquals(
        hex.parseHex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
        Derivation.hkdfSha256(hex.parseHex("0b".repeat(22)), hex.parseHex("000102030405060708090a0b0c"), hex.parseHex("f0f1f2f3f4f5f6f7f8f9"), 42));
    assertArrayEquals(
        hex.parseHex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
        Derivation.hkdfSha256(hex.parseHex("0b".repeat(22)), new byte[0], new byte[0], 42));
  }

  @TestFactory
  Stream<DynamicTest> wycheproofHkdfSha256() throws Exception {
    JsonNode file = Vectors.read("../shared/vectors/wycheproof/hkdf_sha256_test.json");
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode group : file.get("testGroups")) {
      for (JsonNode t : group.get("tests")) {
        tests.add(DynamicTest.dynamicTest("tcId " + t.get("tcId").asInt() + " " + t.get("comment").asText(), () -> {
          byte[] ikm = Vectors.hex(t.get("ikm"));
          byte[] salt = Vectors.hex(t.get("salt"));
          byte[] info = Vectors.hex(t.get("info"));
          int size = t.get("size").asInt();
          if ("valid".equals(t.get("result").asText())) {
            assertArrayEquals(Vectors.hex(t.get("okm")), Derivation.hkdfSha256(ikm, salt, info, size));
            assertArrayEquals(Vectors.hex(t.get("okm")), jdkHkdf(ikm, salt, info, size));
          } else {
            // Invalid here means an output longer than 255 * 32 bytes: refused.
            assertThrows(PadlockException.InvalidInput.class, () -> Derivation.hkdfSha256(ikm, salt, info, size));
          }
        }));
      }
    }
    assertEquals(file.get("numberOfTests").asInt(), tests.size());
    return tests.stream();
  }

  @Test
  void infoRefusesBadIdentifiers() {
    assertThrows(PadlockException.InvalidInput.class, () -> Derivation.info("Playlist", "profile", 1, "u1"));
    assertThrows(PadlockException.InvalidInput.class, () -> Derivation.info("playlist", "profile", 0, "u1"));
    assertThrows(PadlockException.InvalidInput.class, () -> Derivation.info("playlist", "profile", 1, "u".repeat(129)));
    assertThrows(PadlockException.InvalidInput.class, () -> Derivation.hkdfSha256(new byte[1], new byte[0], new byte[0], -1));
  }

  /** A second HKDF-SHA256, straight from RFC 5869 sections 2.2-2.3 on the JDK's HMAC. */
  private static byte[] jdkHkdf(byte[] ikm, byte[] salt, byte[] info, int length) throws Exception {
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(salt.length == 0 ? new byte[32] : salt, "HmacSHA256"));
    byte[] prk = mac.doFinal(ikm);
    mac.init(new SecretKeySpec(prk, "HmacSHA256"));
    byte[] okm = new byte[length];
    byte[] t = new byte[0];
    for (int offset = 0, counter = 1; offset < length; counter++) {
      mac.update(t);
      mac.update(info);
      mac.update((byte) counter);
      t = mac.doFinal();
      int n = Math.min(t.length, length - offset);
      System.arraycopy(t, 0, okm, offset, n);
      offset += n;
    }
    return okm;
  }
}
