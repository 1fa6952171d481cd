package io.padlock.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The strict parser of Padlock's keys object, attacked; and the cache's bounds. */
class UserKeysTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String K1 = "neYet2ei7hxoKrLyzPhyqQ7FramF7ebGYJIyLB7cu9o";
  private static final String K2 = "rEIAqnOxJ6w96y2cGAsBuiXKrLnpDJaCJgVtKhsIjyU";

  private static JsonNode json(String text) throws Exception {
    return JSON.readTree(text.replace('\'', '"'));
  }

  private static String keys(String categories) {
    return "{'userId':'u1','status':'ok','maxAgeSeconds':29,'categories':[" + categories + "]}";
  }

  @Test
  void parsesTheDocumentedShape() throws Exception {
    UserKeys k = UserKeys.parse(json(keys("{'category':'profile','status':'ok','current':2,'keys':[{'version':1,'key':'" + K1
        + "'},{'version':2,'key':'" + K2 + "'}]},{'category':'advertising','status':'shredded'}")), "u1", null);
    assertEquals(29, k.maxAgeSeconds);
    assertEquals(2, k.categories.get("profile").current());
    assertEquals(2, k.categories.get("profile").versions().size());
    assertEquals(UserKeys.Status.SHREDDED, k.categories.get("advertising").status());
    assertEquals("UserKeys[u1, OK, categories=[profile, advertising]]", k.toString());
    assertEquals(UserKeys.Status.NOT_FOUND, UserKeys.parse(json("{'userId':'u1','status':'not_found'}"), "u1", null).status);
    assertEquals(UserKeys.Status.PENDING_DELETION, UserKeys.parse(json("{'userId':'u1','status':'pending_deletion'}"), "u1", null).status);
    // `only` drops categories not asked for.
    assertNull(UserKeys.parse(json(keys("{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1 + "'}]}")), "u1",
        List.of("payments")).categories.get("profile"));
  }

  @Test
  void refusesMalformedAnswers() {
    String good = "{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1 + "'}]}";
    String[] bad = {
      "[]",
      "{'userId':'u2','status':'ok','maxAgeSeconds':1,'categories':[]}", // another user's answer
      "{'userId':'u1','status':'fine'}",
      "{'userId':'u1','status':'ok','maxAgeSeconds':-1,'categories':[]}",
      "{'userId':'u1','status':'ok','maxAgeSeconds':1.5,'categories':[]}",
      "{'userId':'u1','status':'ok','maxAgeSeconds':'1','categories':[]}",
      "{'userId':'u1','status':'ok','maxAgeSeconds':1,'categories':{}}",
      keys(good + "," + good), // a category twice
      keys("{'category':'Profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1 + "'}]}"),
      keys("{'category':'profile','status':'ok','current':2,'keys':[{'version':1,'key':'" + K1 + "'}]}"), // current has no key
      keys("{'category':'profile','status':'ok','current':1,'keys':[]}"),
      keys("{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1 + "'},{'version':1,'key':'" + K2 + "'}]}"),
      keys("{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1.substring(1) + "'}]}"), // 31 bytes
      keys("{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1 + "A'}]}"),
      keys("{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1.replace('n', '+') + "'}]}"), // not base64url
      keys("{'category':'profile','status':'ok','current':0,'keys':[{'version':0,'key':'" + K1 + "'}]}"),
      keys("{'category':'profile','status':'ok','current':2147483648,'keys':[{'version':2147483648,'key':'" + K1 + "'}]}"),
      keys("{'category':'profile','status':'ok','current':1,'keys':[{'version':'1','key':'" + K1 + "'}]}"),
    };
    for (String b : bad) assertThrows(UserKeys.BadResponse.class, () -> UserKeys.parse(json(b), "u1", null), b);
    assertThrows(UserKeys.BadResponse.class, () -> UserKeys.parseBatch(json("{'results':[]}"), List.of("u1"), null));
    assertThrows(UserKeys.BadResponse.class, () -> UserKeys.parseBatch(json("{}"), List.of("u1"), null));
  }

  @Test
  void theBatchBodyIsJson() throws Exception {
    JsonNode body = JSON.readTree(KeyLookups.batchBody(List.of("u1", "a:b@c+d=e"), List.of("profile")));
    assertEquals("a:b@c+d=e", body.get("userIds").get(1).asText());
    assertEquals("profile", body.get("categories").get(0).asText());
  }

  @Test
  void cacheExpiresAndEvictsLeastRecentlyUsed() throws Exception {
    KeyCache cache = new KeyCache(2, 1 << 20);
    UserKeys a = UserKeys.parse(json("{'userId':'a','status':'ok','maxAgeSeconds':1,'categories':[]}"), "a", null);
    UserKeys b = UserKeys.parse(json("{'userId':'b','status':'ok','maxAgeSeconds':1,'categories':[]}"), "b", null);
    UserKeys c = UserKeys.parse(json("{'userId':'c','status':'ok','maxAgeSeconds':1,'categories':[]}"), "c", null);
    cache.put(a, 100);
    cache.put(b, 100);
    assertNotNull(cache.get("a", 50)); // a is now the most recently used
    cache.put(c, 100);
    assertNull(cache.get("b", 50));
    assertNotNull(cache.get("a", 50));
    assertNull(cache.get("a", 100)); // expired at its expiry
    cache.sweep(100);
    assertEquals(0, cache.size());
    assertEquals(0, cache.bytes());
  }

  @Test
  void cacheIsBoundedInBytes() throws Exception {
    String one = "{'category':'profile','status':'ok','current':1,'keys':[{'version':1,'key':'" + K1 + "'}]}";
    UserKeys a = UserKeys.parse(json(keys(one)), "u1", null);
    KeyCache cache = new KeyCache(100, a.bytes * 2);
    for (int i = 0; i < 5; i++) {
      cache.put(UserKeys.parse(json(keys(one).replace("'u1'", "'u" + i + "'")), "u" + i, null), 100);
    }
    assertEquals(2, cache.size()); // the two most recent
    assertEquals(a.bytes * 2, cache.bytes());
    assertNotNull(cache.get("u4", 0));
    assertNull(cache.get("u2", 0));
    // An entry larger than the whole bound is not cached.
    KeyCache tiny = new KeyCache(100, a.bytes - 1);
    tiny.put(a, 100);
    assertEquals(0, tiny.size());
  }
}
