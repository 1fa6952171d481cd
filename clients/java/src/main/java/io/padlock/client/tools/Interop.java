package io.padlock.client.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.padlock.client.Lifecycle;
import io.padlock.client.PadlockClient;
import io.padlock.client.PadlockException;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * The interop program of INTEROP.md: one JSON request per line on stdin, one JSON answer per line
 * on stdout, until EOF. Any failure is {"ok":false,"code":CODE,"message":TEXT}.
 */
public final class Interop {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Interop() {}

  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    try (PadlockClient padlock = new PadlockClient(Env.options());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      for (String line; (line = in.readLine()) != null; ) {
        if (line.isBlank()) continue;
        out.println(JSON.writeValueAsString(answer(padlock, line)));
        out.flush();
      }
    }
  }

  static ObjectNode answer(PadlockClient padlock, String line) {
    try {
      JsonNode request;
      try {
        request = JSON.readTree(line);
      } catch (Exception e) {
        throw new PadlockException.InvalidInput("the request is not JSON");
      }
      if (request == null || !request.isObject()) throw new PadlockException.InvalidInput("the request is not a JSON object");
      return handle(padlock, request);
    } catch (PadlockException e) {
      return failure(e);
    } catch (RuntimeException e) {
      return JSON.createObjectNode().put("ok", false).put("code", "INVALID_INPUT").put("message", e.getClass().getSimpleName());
    }
  }

  private static ObjectNode handle(PadlockClient padlock, JsonNode r) {
    ObjectNode ok = JSON.createObjectNode().put("ok", true);
    switch (text(r, "op")) {
      case "encrypt" -> ok.put("data", b64(padlock.encrypt(text(r, "user"), text(r, "category"), bytes(r, "data"))));
      case "decrypt" -> ok.put("data", b64(padlock.decrypt(text(r, "user"), bytes(r, "data"))));
      case "create" -> padlock.createKeychain(text(r, "user"));
      case "shred" -> receipt(ok, padlock.shredKeychain(text(r, "user")));
      case "shredCategory" -> receipt(ok, padlock.shredCategory(text(r, "user"), text(r, "category")));
      case "forget" -> padlock.forget(text(r, "user"));
      case "bulkDecrypt" -> {
        JsonNode records = r.get("records");
        if (records == null || !records.isArray()) throw new PadlockException.InvalidInput("records must be an array");
        List<PadlockClient.BulkRecord> list = new ArrayList<>();
        for (JsonNode rec : records) list.add(new PadlockClient.BulkRecord(text(rec, "user"), bytes(rec, "data")));
        ArrayNode results = ok.putArray("results");
        for (PadlockClient.BulkResult result : padlock.bulkDecrypt(list)) {
          if (result.ok()) results.addObject().put("ok", true).put("data", b64(result.plaintext()));
          else results.addObject().put("ok", false).put("code", result.error().code().name());
        }
      }
      default -> throw new PadlockException.InvalidInput("unknown op");
    }
    return ok;
  }

  private static void receipt(ObjectNode ok, Lifecycle.ShredOutcome outcome) {
    if (outcome.receiptJws() == null) ok.putNull("receipt");
    else ok.put("receipt", outcome.receiptJws());
  }

  private static ObjectNode failure(PadlockException e) {
    return JSON.createObjectNode().put("ok", false).put("code", e.code().name()).put("message", e.getMessage());
  }

  private static String text(JsonNode r, String field) {
    JsonNode value = r.get(field);
    if (value == null || !value.isTextual()) throw new PadlockException.InvalidInput(field + " must be a string");
    return value.asText();
  }

  private static byte[] bytes(JsonNode r, String field) {
    try {
      return Base64.getDecoder().decode(text(r, field));
    } catch (IllegalArgumentException e) {
      throw new PadlockException.InvalidInput(field + " must be standard base64");
    }
  }

  private static String b64(byte[] bytes) {
    return Base64.getEncoder().encodeToString(bytes);
  }
}
