package io.padlock.client;

import java.util.List;

/**
 * Base class of every exception the client throws; {@link #code()} is the same stable code as the
 * TypeScript SDK's ({@code packages/client/src/errors.ts}). Messages never carry key material,
 * credentials or plaintext, and {@link DecryptionFailed} never says why (no oracle).
 *
 * <pre>{@code
 * try { padlock.decrypt("alice", stored); }
 * catch (PadlockException.KeychainShredded e) { deleteRecord(); } // the data is deleted
 * }</pre>
 */
public abstract class PadlockException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The codes, one per outcome a caller handles differently. */
  public enum Code {
    KEYCHAIN_SHREDDED,
    KEYCHAIN_PENDING_DELETION,
    LEGAL_HOLD,
    KEYCHAIN_NOT_FOUND,
    PERMISSION_DENIED,
    UNAVAILABLE,
    DECRYPTION_FAILED,
    INVALID_INPUT,
    RECEIPT_INVALID
  }

  private final Code code;

  PadlockException(Code code, String message) {
    super(message);
    this.code = code;
  }

  public Code code() {
    return code;
  }

  /** The user's keys for this data are destroyed: treat the data as deleted; never retry. */
  public static final class KeychainShredded extends PadlockException {
    private static final long serialVersionUID = 1L;
    private final String category;

    public KeychainShredded(String category) {
      super(
          Code.KEYCHAIN_SHREDDED,
          category == null
              ? "the user's keychain is shredded; treat the data as deleted"
              : "the user's \"" + category + "\" keys are shredded; treat the data as deleted");
      this.category = category;
    }

    /** The shredded category when only one is (an opt-out), else null. */
    public String category() {
      return category;
    }
  }

  /** The keys are withheld during a scheduled shred's grace period; the data must not be read now. */
  public static final class KeychainPendingDeletion extends PadlockException {
    private static final long serialVersionUID = 1L;

    public KeychainPendingDeletion() {
      super(Code.KEYCHAIN_PENDING_DELETION, "the user's keys are withheld until a scheduled shred (or its cancel)");
    }
  }

  /** A legal hold forbids this shred. */
  public static final class LegalHold extends PadlockException {
    private static final long serialVersionUID = 1L;

    public LegalHold(String message) {
      super(Code.LEGAL_HOLD, message);
    }
  }

  /** The user has no keychain (or no key in the category): create it at signup. */
  public static final class KeychainNotFound extends PadlockException {
    private static final long serialVersionUID = 1L;
    private final String category;

    public KeychainNotFound(String category) {
      super(
          Code.KEYCHAIN_NOT_FOUND,
          category == null
              ? "the user has no keychain"
              : "the user has no key in category \"" + category + "\"");
      this.category = category;
    }

    public String category() {
      return category;
    }
  }

  /** The credential was refused, or the service may not do this. */
  public static final class PermissionDenied extends PadlockException {
    private static final long serialVersionUID = 1L;
    private final String serverCode;

    public PermissionDenied(String message, String serverCode) {
      super(Code.PERMISSION_DENIED, message);
      this.serverCode = serverCode;
    }

    /** UNAUTHENTICATED or PERMISSION_DENIED when the server answered, else null. */
    public String serverCode() {
      return serverCode;
    }
  }

  /** One failed attempt: which group and URL, and what went wrong (ECONNREFUSED, TIMEOUT, HTTP_503 ...). */
  public record FailedAttempt(String group, String url, String reason) {}

  /** No endpoint group answered within the deadline, or the client is closed. */
  public static final class Unavailable extends PadlockException {
    private static final long serialVersionUID = 1L;
    private final transient List<FailedAttempt> attempts;

    public Unavailable(String message, List<FailedAttempt> attempts) {
      super(Code.UNAVAILABLE, withAttempts(message, attempts));
      this.attempts = List.copyOf(attempts);
    }

    public List<FailedAttempt> attempts() {
      return attempts;
    }

    private static String withAttempts(String message, List<FailedAttempt> attempts) {
      if (attempts.isEmpty()) return message;
      StringBuilder out = new StringBuilder(message).append(" (");
      for (int i = 0; i < attempts.size(); i++) {
        FailedAttempt a = attempts.get(i);
        if (i > 0) out.append("; ");
        out.append(a.group()).append(' ').append(a.url()).append(": ").append(a.reason());
      }
      return out.append(')').toString();
    }
  }

  /**
   * The envelope cannot be opened with this user's keys: tampered, truncated, not an envelope,
   * another user's or service's, or an unknown key version. One error, one message for all.
   */
  public static final class DecryptionFailed extends PadlockException {
    private static final long serialVersionUID = 1L;

    public DecryptionFailed() {
      super(Code.DECRYPTION_FAILED, "decryption failed");
    }
  }

  /** A bad argument or option; the message names it. Nothing was sent. */
  public static final class InvalidInput extends PadlockException {
    private static final long serialVersionUID = 1L;

    public InvalidInput(String message) {
      super(Code.INVALID_INPUT, message);
    }
  }

  /** A deletion receipt that does not verify with Padlock's published keys. */
  public static final class ReceiptInvalid extends PadlockException {
    private static final long serialVersionUID = 1L;
    private final String reason;

    public ReceiptInvalid(String reason) {
      super(Code.RECEIPT_INVALID, "the receipt does not verify: " + reason);
      this.reason = reason;
    }

    public String reason() {
      return reason;
    }
  }
}
