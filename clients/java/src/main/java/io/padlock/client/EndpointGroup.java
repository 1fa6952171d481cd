package io.padlock.client;

import java.net.URI;
import java.util.List;
import java.util.regex.Pattern;

/** One deployment group (e.g. {@code padlock}, then {@code padlock-mirror}): its name and base URLs. */
public record EndpointGroup(String name, List<URI> urls) {
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");

  public EndpointGroup {
    if (name == null || !NAME.matcher(name).matches()) {
      throw new PadlockException.InvalidInput("group name must be 1-64 characters of A-Z, a-z, 0-9, \".\", \"_\" and \"-\"");
    }
    if (urls == null || urls.isEmpty() || urls.size() > 64) {
      throw new PadlockException.InvalidInput("group " + name + " must have 1 to 64 base URLs");
    }
    urls = List.copyOf(urls);
  }

  /** A group from base URL strings ({@code http:} or {@code https:}, optionally with a path prefix). */
  public static EndpointGroup of(String name, String... urls) {
    if (urls == null) throw new PadlockException.InvalidInput("group " + name + " must have 1 to 64 base URLs");
    URI[] parsed = new URI[urls.length];
    for (int i = 0; i < urls.length; i++) parsed[i] = baseUrl(urls[i], name + ".urls[" + i + "]");
    return new EndpointGroup(name, List.of(parsed));
  }

  static URI baseUrl(String value, String where) {
    String message = where + " must be an http: or https: URL without credentials, query or fragment";
    if (value == null || value.contains("?") || value.contains("#")) throw new PadlockException.InvalidInput(message);
    URI uri;
    try {
      uri = new URI(value);
    } catch (Exception e) {
      throw new PadlockException.InvalidInput(message);
    }
    String scheme = uri.getScheme();
    if (!("http".equals(scheme) || "https".equals(scheme)) || uri.getHost() == null || uri.getRawUserInfo() != null) {
      throw new PadlockException.InvalidInput(message);
    }
    // Requests append to a path prefix without its trailing slash.
    String path = uri.getRawPath() == null ? "" : uri.getRawPath();
    while (path.endsWith("/")) path = path.substring(0, path.length() - 1);
    return URI.create(scheme + "://" + uri.getRawAuthority() + path);
  }
}
