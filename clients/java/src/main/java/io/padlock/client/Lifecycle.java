package io.padlock.client;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.List;

/** Lifecycle answers, as Padlock shows them (times ISO 8601). */
public final class Lifecycle {
  private Lifecycle() {}

  /** A shred's answer: versions destroyed, and its signed receipt (keep the JWS as the proof). */
  public record ShredOutcome(int shredded, String receiptId, String receiptJws) {}

  /** A rotation's answer: the new current version. */
  public record Rotation(String userId, String category, int version) {}

  /** A scheduled shred; category null means the whole keychain. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public record ScheduledShred(
      String scheduleId,
      String userId,
      String category,
      String state,
      String executeAt,
      boolean serveDuringGrace,
      String requestedBy,
      String createdAt,
      String finishedAt,
      String finishedBy,
      boolean verified) {}

  /** A legal hold; category null means the whole keychain. */
  @JsonIgnoreProperties(ignoreUnknown = true)
  public record LegalHoldRecord(
      String holdId,
      String userId,
      String category,
      String reason,
      String placedBy,
      String placedAt,
      String releasedAt,
      String releasedBy,
      String state,
      boolean verified) {}

  /** A keychain's scheduled shreds and holds. */
  public record Status(String userId, List<ScheduledShred> schedules, List<LegalHoldRecord> holds) {}
}
