package io.padlock.client.tools;

import io.padlock.client.PadlockClient;

/** Test access to the interop program's line handler. */
public final class InteropAccess {
  private InteropAccess() {}

  public static String answer(PadlockClient client, String line) {
    return Interop.answer(client, line).toString();
  }

  public static String code(PadlockClient client, String line) {
    return Interop.answer(client, line).path("code").asText();
  }
}
