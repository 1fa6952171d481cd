package io.padlock.client;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * A user's derived keys as Padlock serves them (batch-get, create), parsed strictly: a malformed
 * answer counts as that endpoint failing, never as "no key". Key text is decoded here, once.
 */
final class UserKeys {
  enum Status {
    OK,
    SHREDDED,
    NOT_FOUND,
    PENDING_DELETION;

    static Status parse(JsonNode node, String what) {
      String text = node == null || !node.isTextual() ? "" : node.asText();
      return switch (text) {
        case "ok" -> OK;
        case "shredded" -> SHREDDED;
        case "not_found" -> NOT_FOUND;
        case "pending_deletion" -> PENDING_DELETION;
        default -> throw new BadResponse(what + ".status is unknown");
      };
    }
  }

  /** One category: its status, current version (0 when none live) and live keys by version. */
  record CategoryKeys(Status status, int current, Map<Integer, DerivedKey> versions) {}

  /** Thrown by the parsers; the endpoint layer turns it into a failed attempt. */
  static final class BadResponse extends RuntimeException {
    private static final long serialVersionUID = 1L;

    BadResponse(String what) {
      super("malformed response: " + what, null, false, false);
    }
  }

  private static final Pattern KEY_TEXT = Pattern.compile("[A-Za-z0-9_-]{43}");

  final String userId;
  final Status status;
  final Map<String, CategoryKeys> categories;
  final int maxAgeSeconds;
  /** Estimated heap bytes held, for the cache's byte bound. */
  final long bytes;

  // Rough heap costs: an entry with its map, a category with its map, a DerivedKey with its arrays and spec.
  private static final int ENTRY_BYTES = 200;
  private static final int CATEGORY_BYTES = 150;
  private static final int KEY_BYTES = 200;

  private UserKeys(String userId, Status status, Map<String, CategoryKeys> categories, int maxAgeSeconds) {
    this.userId = userId;
    this.status = status;
    this.categories = categories;
    this.maxAgeSeconds = maxAgeSeconds;
    long estimate = ENTRY_BYTES + 2L * userId.length();
    for (Map.Entry<String, CategoryKeys> c : categories.entrySet()) {
      estimate += CATEGORY_BYTES + 2L * c.getKey().length() + (long) KEY_BYTES * c.getValue().versions().size();
    }
    this.bytes = estimate;
  }

  /** Parses one user's keys; {@code only}, when not null, keeps just those categories. */
  static UserKeys parse(JsonNode body, String userId, List<String> only) {
    if (body == null || !body.isObject()) throw new BadResponse("result is not an object");
    if (!userId.equals(body.path("userId").asText(null))) throw new BadResponse("result for another user");
    Status status = Status.parse(body.get("status"), "result");
    if (status != Status.OK) return new UserKeys(userId, status, Map.of(), 0);
    JsonNode maxAge = body.get("maxAgeSeconds");
    if (maxAge == null || !maxAge.canConvertToInt() || !maxAge.isIntegralNumber() || maxAge.asInt() < 0) {
      throw new BadResponse("maxAgeSeconds is not a non-negative integer");
    }
    JsonNode list = body.get("categories");
    if (list == null || !list.isArray()) throw new BadResponse("categories is not an array");
    Map<String, CategoryKeys> categories = new LinkedHashMap<>();
    for (JsonNode entry : list) {
      if (!entry.isObject()) throw new BadResponse("category is not an object");
      String name = entry.path("category").asText(null);
      if (!Identifiers.isCategory(name) || categories.containsKey(name)) throw new BadResponse("category name");
      if (only != null && !only.contains(name)) continue;
      Status categoryStatus = Status.parse(entry.get("status"), "category");
      Map<Integer, DerivedKey> versions = new TreeMap<>();
      int current = 0;
      if (categoryStatus == Status.OK) {
        JsonNode keys = entry.get("keys");
        JsonNode currentNode = entry.get("current");
        if (keys == null || !keys.isArray() || keys.isEmpty() || currentNode == null || !currentNode.isIntegralNumber()
            || !Identifiers.isVersion(currentNode.asLong())) {
          throw new BadResponse("category keys");
        }
        current = currentNode.asInt();
        for (JsonNode k : keys) {
          JsonNode version = k.get("version");
          JsonNode text = k.get("key");
          if (version == null || !version.isIntegralNumber() || !Identifiers.isVersion(version.asLong())
              || versions.containsKey(version.asInt()) || text == null || !text.isTextual()
              || !KEY_TEXT.matcher(text.asText()).matches()) {
            throw new BadResponse("key entry");
          }
          versions.put(version.asInt(), DerivedKey.adopt(Base64.getUrlDecoder().decode(text.asText())));
        }
        if (!versions.containsKey(current)) throw new BadResponse("current version has no key");
      }
      categories.put(name, new CategoryKeys(categoryStatus, current, Collections.unmodifiableMap(versions)));
    }
    return new UserKeys(userId, status, Collections.unmodifiableMap(categories), maxAge.asInt());
  }

  /** Parses a batch-get answer: one result per requested id, in order. */
  static List<UserKeys> parseBatch(JsonNode body, List<String> userIds, List<String> only) {
    JsonNode results = body == null ? null : body.get("results");
    if (results == null || !results.isArray() || results.size() != userIds.size()) {
      throw new BadResponse("results do not match the user ids sent");
    }
    UserKeys[] out = new UserKeys[userIds.size()];
    for (int i = 0; i < out.length; i++) out[i] = parse(results.get(i), userIds.get(i), only);
    return List.of(out);
  }

  /** Overwrites every key this object holds. */
  void wipe() {
    for (CategoryKeys c : categories.values()) for (DerivedKey k : c.versions().values()) k.wipe();
  }

  @Override
  public String toString() {
    return "UserKeys[" + userId + ", " + status + ", categories=" + categories.keySet() + "]";
  }
}
