// Crypto-shredding from the JVM, in one file. Run by ./run.sh, which starts a real Padlock
// (`padlock serve`, SQLite store, maxStalenessSeconds 2) and passes its URL and a credential:
//
//   java -cp <client jar and its lib> ShredDemo.java <padlock-url> <credential>
//
// Signs up alice and bob, keeps their profiles as envelopes only, shreds alice's keychain,
// verifies the deletion receipt, and shows that alice's record is gone and bob's is not.
import io.padlock.client.Lifecycle;
import io.padlock.client.PadlockClient;
import io.padlock.client.PadlockClientOptions;
import io.padlock.client.PadlockException;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;

public class ShredDemo {
  public static void main(String[] args) throws Exception {
    Map<String, byte[]> database = new LinkedHashMap<>(); // the service's own store: envelopes only
    try (PadlockClient padlock = new PadlockClient(
        PadlockClientOptions.builder().group("padlock", args[0]).credential(args[1]).build())) {
      for (String user : new String[] {"alice", "bob"}) {
        padlock.createKeychain(user);
        database.put(user, padlock.encrypt(user, "profile", "{\"name\":\"" + user + "\",\"city\":\"Oxford\"}"));
        System.out.println(user + " stored: " + Base64.getEncoder().encodeToString(database.get(user)).substring(0, 40) + "...");
      }

      Lifecycle.ShredOutcome shred = padlock.shredKeychain("alice"); // account deletion
      System.out.println("shredded alice: " + shred.shredded() + " key versions, receipt for "
          + padlock.verifyReceipt(shred.receiptJws()).sub());

      boolean ok = true;
      for (String user : database.keySet()) {
        try {
          System.out.println(user + ": " + padlock.decryptText(user, database.get(user)));
          ok &= user.equals("bob");
        } catch (PadlockException.KeychainShredded deleted) {
          System.out.println(user + ": deleted (" + deleted.code() + "), the envelope is still in the database");
          ok &= user.equals("alice");
        }
      }
      System.out.println(ok ? "OK: alice's record is unreadable, bob's is intact." : "UNEXPECTED: see above.");
      System.exit(ok ? 0 : 1);
    }
  }
}
