package io.padlock.client;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;

/**
 * Deletion receipt verification (docs/spec.md section 9) with the JDK's Ed25519, written against
 * the spec, not the server's code: three parts of canonical unpadded base64url, the kid's key from
 * the JWKS, alg EdDSA, typ padlock-receipt+jwt, the signature over header "." payload, then the
 * claims.
 */
public final class Receipts {
  public static final String RECEIPT_TYP = "padlock-receipt+jwt";
  /** SubjectPublicKeyInfo of an Ed25519 key (RFC 8410) before its 32 raw bytes. */
  private static final byte[] ED25519_SPKI_PREFIX = {
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00
  };

  private Receipts() {}

  /** The kid a compact JWS names in its protected header, or null when it cannot be read. */
  public static String kidOf(String jws) {
    try {
      int dot = jws.indexOf('.');
      JsonNode header = Endpoints.JSON.readTree(Base64.getUrlDecoder().decode(jws.substring(0, Math.max(dot, 0))));
      JsonNode kid = header.get("kid");
      return kid != null && kid.isTextual() ? kid.asText() : null;
    } catch (Exception e) {
      return null;
    }
  }

  /** Verifies {@code jws} against {@code jwks} ({"keys": [...]}) and returns its claims; throws ReceiptInvalid. */
  public static ReceiptClaims verify(String jws, JsonNode jwks) {
    if (jws == null || jws.length() > 65536) throw new PadlockException.InvalidInput("jws must be a string of at most 64 KiB");
    String[] parts = jws.split("\\.", -1);
    if (parts.length != 3) throw invalid("not a compact JWS in canonical base64url");
    byte[][] decoded = new byte[3][];
    for (int i = 0; i < 3; i++) {
      decoded[i] = canonicalBase64Url(parts[i]);
      if (decoded[i] == null) throw invalid("not a compact JWS in canonical base64url");
    }
    JsonNode header;
    try {
      header = Endpoints.JSON.readTree(decoded[0]);
    } catch (Exception e) {
      throw invalid("the header is not JSON");
    }
    if (header == null || !"EdDSA".equals(header.path("alg").asText(null))) throw invalid("alg is not EdDSA");
    String kid = header.path("kid").asText(null);
    JsonNode jwk = null;
    if (jwks != null && jwks.path("keys").isArray()) {
      for (JsonNode k : jwks.get("keys")) if (kid != null && kid.equals(k.path("kid").asText(null))) jwk = k;
    }
    if (jwk == null) throw invalid("the signature does not verify with the published keys");
    boolean verified;
    try {
      if (!"OKP".equals(jwk.path("kty").asText()) || !"Ed25519".equals(jwk.path("crv").asText())) throw new IllegalArgumentException();
      if (jwk.has("alg") && !"EdDSA".equals(jwk.get("alg").asText())) throw new IllegalArgumentException();
      byte[] x = canonicalBase64Url(jwk.path("x").asText(""));
      if (x == null || x.length != 32) throw new IllegalArgumentException();
      byte[] spki = new byte[ED25519_SPKI_PREFIX.length + 32];
      System.arraycopy(ED25519_SPKI_PREFIX, 0, spki, 0, ED25519_SPKI_PREFIX.length);
      System.arraycopy(x, 0, spki, ED25519_SPKI_PREFIX.length, 32);
      PublicKey key = KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(spki));
      Signature ed25519 = Signature.getInstance("Ed25519");
      ed25519.initVerify(key);
      ed25519.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
      verified = decoded[2].length == 64 && ed25519.verify(decoded[2]);
    } catch (Exception e) {
      verified = false;
    }
    if (!verified) throw invalid("the signature does not verify with the published keys");
    if (!RECEIPT_TYP.equals(header.path("typ").asText(null))) throw invalid("typ is not " + RECEIPT_TYP);
    JsonNode claims;
    try {
      claims = Endpoints.JSON.readTree(decoded[1]);
    } catch (Exception e) {
      throw invalid("the payload is not JSON");
    }
    if (claims == null || !"padlock".equals(claims.path("iss").asText(null)) || !claims.path("jti").isTextual()
        || !claims.path("sub").isTextual() || !claims.path("shreddedAt").isNumber()
        || !claims.path("categories").isArray() || !claims.path("requestedBy").isTextual()) {
      throw invalid("the claims are not a Padlock receipt");
    }
    try {
      return Endpoints.JSON.treeToValue(claims, ReceiptClaims.class);
    } catch (Exception e) {
      throw invalid("the claims are not a Padlock receipt");
    }
  }

  /** Decodes unpadded base64url only when re-encoding gives the same text (unused bits zero). */
  static byte[] canonicalBase64Url(String text) {
    try {
      byte[] bytes = Base64.getUrlDecoder().decode(text);
      return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes).equals(text) ? bytes : null;
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  private static PadlockException.ReceiptInvalid invalid(String reason) {
    return new PadlockException.ReceiptInvalid(reason);
  }
}
