package io.padlock.client;

import java.util.regex.Pattern;

/** The identifier grammars of docs/spec.md section 2 (ASCII only, so characters and bytes coincide). */
public final class Identifiers {
  private static final Pattern USER_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}");
  private static final Pattern CATEGORY = Pattern.compile("[a-z][a-z0-9_-]{0,31}");
  private static final Pattern SERVICE_ID = Pattern.compile("[a-z][a-z0-9-]{1,63}");

  static final String USER_ID_MESSAGE =
      "userId must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit";
  static final String CATEGORY_MESSAGE =
      "category must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter";

  private Identifiers() {}

  public static boolean isUserId(String value) {
    return value != null && USER_ID.matcher(value).matches();
  }

  public static boolean isCategory(String value) {
    return value != null && CATEGORY.matcher(value).matches();
  }

  public static boolean isServiceId(String value) {
    return value != null && SERVICE_ID.matcher(value).matches();
  }

  /** A key version: 1 to 2^31-1. */
  public static boolean isVersion(long value) {
    return value >= 1 && value <= Integer.MAX_VALUE;
  }

  static String checkUserId(String userId) {
    if (!isUserId(userId)) throw new PadlockException.InvalidInput(USER_ID_MESSAGE);
    return userId;
  }

  static String checkCategory(String category) {
    if (!isCategory(category)) throw new PadlockException.InvalidInput(CATEGORY_MESSAGE);
    return category;
  }
}
