package io.padlock.client;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.List;

/** What a verified deletion receipt attests (docs/spec.md section 9). */
@JsonIgnoreProperties(ignoreUnknown = true)
public record ReceiptClaims(
    String iss,
    String jti,
    String sub,
    long iat,
    long shreddedAt,
    String scope,
    List<ShreddedCategory> categories,
    String requestedBy,
    String scheduleId) {

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record ShreddedCategory(String category, List<ShreddedVersion> versions) {}

  @JsonIgnoreProperties(ignoreUnknown = true)
  public record ShreddedVersion(int version, long shreddedAt) {}
}
