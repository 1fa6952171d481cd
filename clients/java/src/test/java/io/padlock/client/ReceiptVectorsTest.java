package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** packages/server/vectors/receipt.json (docs/spec.md section 9): verify, then attack each part. */
class ReceiptVectorsTest {
  private static final String BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  @TestFactory
  Stream<DynamicTest> receipts() throws Exception {
    JsonNode file = Vectors.read("packages/server/vectors/receipt.json");
    JsonNode jwks = file.get("jwks");
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode c : file.get("cases")) {
      String jws = c.get("jws").asText();
      String name = c.get("name").asText();
      boolean receipt = Receipts.RECEIPT_TYP.equals(c.get("typ").asText());
      tests.add(DynamicTest.dynamicTest(name + ": verifies as its typ says", () -> {
        if (receipt) {
          ReceiptClaims claims = Receipts.verify(jws, jwks);
          JsonNode payload = c.get("payload");
          assertEquals(payload.get("jti").asText(), claims.jti());
          assertEquals(payload.get("sub").asText(), claims.sub());
          assertEquals(payload.get("shreddedAt").asLong(), claims.shreddedAt());
          assertEquals(payload.get("categories").size(), claims.categories().size());
        } else {
          // A checkpoint is signed by the same key but must not pass for a receipt.
          PadlockException.ReceiptInvalid e = assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(jws, jwks));
          assertEquals("typ is not padlock-receipt+jwt", e.reason());
        }
      }));
      if (!receipt) continue;
      tests.add(DynamicTest.dynamicTest(name + ": every changed character fails", () -> {
        for (int i = 0; i < jws.length(); i++) {
          char original = jws.charAt(i);
          for (char replacement : new char[] {BASE64URL.charAt((BASE64URL.indexOf(original) + 1) & 63), '.', '='}) {
            if (replacement == original) continue;
            String changed = jws.substring(0, i) + replacement + jws.substring(i + 1);
            assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(changed, jwks), "position " + i);
          }
        }
      }));
      tests.add(DynamicTest.dynamicTest(name + ": unknown kid, wrong key, truncation", () -> {
        ObjectNode other = (ObjectNode) jwks.deepCopy();
        ((ObjectNode) other.get("keys").get(0)).put("kid", "another");
        assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(jws, other));
        ObjectNode wrongKey = (ObjectNode) jwks.deepCopy();
        byte[] x = Base64.getUrlDecoder().decode(wrongKey.get("keys").get(0).get("x").asText());
        x[0] ^= 1;
        ((ObjectNode) wrongKey.get("keys").get(0)).put("x", Base64.getUrlEncoder().withoutPadding().encodeToString(x));
        assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(jws, wrongKey));
        assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(jws.substring(0, jws.lastIndexOf('.')), jwks));
        assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(jws + ".x", jwks));
        assertThrows(PadlockException.ReceiptInvalid.class, () -> Receipts.verify(jws, new ObjectMapper().createObjectNode()));
      }));
    }
    return tests.stream();
  }
}
