#!/usr/bin/env python3
"""Tiny CQL client speaking the Cassandra native protocol v4 (standard library only).

Used by start-node.sh / start-cluster.sh as a readiness probe, and handy for
debugging the local test nodes:

    python3 scripts/cassandra/cql.py 127.0.0.1 "SELECT release_version FROM system.local"
    python3 scripts/cassandra/cql.py --json 127.0.0.2 "SELECT peer, data_center FROM system.peers"
    python3 scripts/cassandra/cql.py 127.0.0.1 "USE ks" "SELECT * FROM t LIMIT 5"
    python3 scripts/cassandra/cql.py --cl QUORUM 127.0.0.1 "INSERT ..."
    python3 scripts/cassandra/cql.py --wait 180 127.0.0.1       # wait until the node answers
    python3 scripts/cassandra/cql.py --schema-agreement 127.0.0.1  # wait for one schema version
    python3 scripts/cassandra/cql.py --wait-peers 2 127.0.0.1      # wait until 2 peers are known

All statements given run in order on one connection. Exit status: 0 on
success, 1 on a server error, 2 on a connection/protocol failure.
With --tls-ca (and --tls-cert/--tls-key when the node wants a client
certificate) it speaks TLS and checks the node's certificate and name; with
--user and --password-file it logs in (PasswordAuthenticator). The password is
read from a file, never from the command line, where `ps` would show it.
"""

import argparse
import datetime
import decimal
import ipaddress
import json
import socket
import ssl
import struct
import sys
import time
import uuid

PROTOCOL_VERSION = 4

OP_ERROR = 0x00
OP_STARTUP = 0x01
OP_READY = 0x02
OP_AUTHENTICATE = 0x03
OP_QUERY = 0x07
OP_RESULT = 0x08
OP_AUTH_CHALLENGE = 0x0E
OP_AUTH_RESPONSE = 0x0F
OP_AUTH_SUCCESS = 0x10

RESULT_VOID = 1
RESULT_ROWS = 2
RESULT_SET_KEYSPACE = 3
RESULT_PREPARED = 4
RESULT_SCHEMA_CHANGE = 5

CONSISTENCY = {
    "ANY": 0x0000, "ONE": 0x0001, "TWO": 0x0002, "THREE": 0x0003,
    "QUORUM": 0x0004, "ALL": 0x0005, "LOCAL_QUORUM": 0x0006,
    "EACH_QUORUM": 0x0007, "SERIAL": 0x0008, "LOCAL_SERIAL": 0x0009,
    "LOCAL_ONE": 0x000A,
}

ERROR_NAMES = {
    0x0000: "Server error", 0x000A: "Protocol error", 0x0100: "Bad credentials",
    0x1000: "Unavailable", 0x1001: "Overloaded", 0x1002: "Is bootstrapping",
    0x1003: "Truncate error", 0x1100: "Write timeout", 0x1200: "Read timeout",
    0x1300: "Read failure", 0x1400: "Function failure", 0x1500: "Write failure",
    0x2000: "Syntax error", 0x2100: "Unauthorized", 0x2200: "Invalid",
    0x2300: "Config error", 0x2400: "Already exists", 0x2500: "Unprepared",
}


class CqlError(Exception):
    """The server answered with an ERROR frame."""

    def __init__(self, code, message):
        super().__init__("%s (0x%04x): %s" % (ERROR_NAMES.get(code, "Error"), code, message))
        self.code = code


class ProtocolError(Exception):
    """Connection or framing problem."""


# --------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------

def _string(s):
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def _long_string(s):
    b = s.encode("utf-8")
    return struct.pack(">i", len(b)) + b


def _string_map(d):
    out = struct.pack(">H", len(d))
    for k, v in d.items():
        out += _string(k) + _string(v)
    return out


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProtocolError("truncated frame body")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self):
        return self.take(self.short()).decode("utf-8")

    def long_string(self):
        return self.take(self.int()).decode("utf-8")

    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def short_bytes(self):
        return self.take(self.short())


# --------------------------------------------------------------------------
# Type decoding
# --------------------------------------------------------------------------

def _read_type(r):
    """Read an [option] describing a CQL type; returns a nested tuple."""
    tid = r.short()
    if tid == 0x0000:
        return ("custom", r.string())
    if tid in (0x0020, 0x0022):  # list, set
        return ("list" if tid == 0x0020 else "set", _read_type(r))
    if tid == 0x0021:
        return ("map", _read_type(r), _read_type(r))
    if tid == 0x0030:  # UDT
        ks = r.string()
        name = r.string()
        fields = [(r.string(), _read_type(r)) for _ in range(r.short())]
        return ("udt", ks, name, fields)
    if tid == 0x0031:
        return ("tuple", [_read_type(r) for _ in range(r.short())])
    return (tid,)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _decode(t, b):
    if b is None:
        return None
    tid = t[0]
    if tid in (0x0001, 0x000D):  # ascii, varchar/text
        return b.decode("utf-8", errors="replace")
    if tid in (0x0002, 0x0005, 0x0012):  # bigint, counter, time (ns)
        return struct.unpack(">q", b)[0]
    if tid == 0x0003:  # blob
        return "0x" + b.hex()
    if tid == 0x0004:
        return b != b"\x00"
    if tid == 0x0006:  # decimal
        scale = struct.unpack(">i", b[:4])[0]
        unscaled = int.from_bytes(b[4:], "big", signed=True)
        return str(decimal.Decimal(unscaled).scaleb(-scale))
    if tid == 0x0007:
        return struct.unpack(">d", b)[0]
    if tid == 0x0008:
        return struct.unpack(">f", b)[0]
    if tid == 0x0009:
        return struct.unpack(">i", b)[0]
    if tid == 0x000B:  # timestamp (ms since epoch)
        ms = struct.unpack(">q", b)[0]
        try:
            return (_EPOCH + datetime.timedelta(milliseconds=ms)).isoformat()
        except OverflowError:
            return ms
    if tid in (0x000C, 0x000F):  # uuid, timeuuid
        return str(uuid.UUID(bytes=b))
    if tid == 0x000E:  # varint
        return int.from_bytes(b, "big", signed=True)
    if tid == 0x0010:  # inet
        return str(ipaddress.ip_address(b))
    if tid == 0x0011:  # date: days since epoch, centred on 2^31
        days = struct.unpack(">I", b)[0] - (1 << 31)
        try:
            return (datetime.date(1970, 1, 1) + datetime.timedelta(days=days)).isoformat()
        except OverflowError:
            return days
    if tid == 0x0013:
        return struct.unpack(">h", b)[0]
    if tid == 0x0014:
        return struct.unpack(">b", b)[0]
    if tid == "custom":
        return "0x" + b.hex()
    if tid in ("list", "set"):
        r = Reader(b)
        return [_decode(t[1], r.bytes()) for _ in range(r.int())]
    if tid == "map":
        r = Reader(b)
        out = {}
        for _ in range(r.int()):
            k = _decode(t[1], r.bytes())
            out[k if isinstance(k, (str, int, float, bool)) else json.dumps(k)] = _decode(t[2], r.bytes())
        return out
    if tid == "udt":
        r = Reader(b)
        out = {}
        for name, ft in t[3]:
            if r.pos >= len(b):
                out[name] = None
            else:
                out[name] = _decode(ft, r.bytes())
        return out
    if tid == "tuple":
        r = Reader(b)
        return [_decode(et, r.bytes()) if r.pos < len(b) else None for et in t[1]]
    return "0x" + b.hex()  # duration, vector and anything newer: raw bytes


# --------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------

class Result:
    def __init__(self, kind, columns=None, rows=None, info=None):
        self.kind = kind
        self.columns = columns or []
        self.rows = rows or []
        self.info = info


class Security:
    """How to reach a node: TLS context and server name, login. All optional."""

    def __init__(self, tls=None, server_name=None, user=None, password=None):
        self.tls = tls
        self.server_name = server_name
        self.user = user
        self.password = password

    @staticmethod
    def from_args(args):
        tls = None
        if args.tls_ca:
            tls = ssl.create_default_context(cafile=args.tls_ca)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            if args.tls_cert:
                tls.load_cert_chain(args.tls_cert, args.tls_key)
        password = None
        if args.password_file:
            with open(args.password_file, "rb") as f:
                password = f.read().rstrip(b"\r\n")
        return Security(tls, args.tls_server_name, args.user, password)


class Connection:
    def __init__(self, host, port=9042, timeout=10.0, security=None):
        self.timeout = timeout
        security = security or Security()
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ProtocolError("cannot connect to %s:%d: %s" % (host, port, e))
        if security.tls is not None:
            try:
                self.sock = security.tls.wrap_socket(self.sock, server_hostname=security.server_name or host)
            except (OSError, ssl.SSLError) as e:
                self.sock.close()
                raise ProtocolError("TLS handshake with %s:%d failed: %s" % (host, port, e))
        self.sock.settimeout(timeout)
        self.stream = 0
        op, body = self._request(OP_STARTUP, _string_map({"CQL_VERSION": "3.0.0"}))
        if op == OP_AUTHENTICATE:
            authenticator = Reader(body).string()
            if security.user is None or security.password is None:
                raise ProtocolError("server requires authentication (%s): give --user and --password-file"
                                    % authenticator)
            # SASL PLAIN (RFC 4616): authzid NUL authcid NUL password.
            token = b"\x00" + security.user.encode("utf-8") + b"\x00" + security.password
            op, body = self._request(OP_AUTH_RESPONSE, struct.pack(">i", len(token)) + token)
            if op == OP_AUTH_CHALLENGE:
                raise ProtocolError("server sent an auth challenge (%s); only PLAIN is supported" % authenticator)
            if op != OP_AUTH_SUCCESS:
                raise ProtocolError("unexpected answer to AUTH_RESPONSE: opcode 0x%02x" % op)
        elif op != OP_READY:
            raise ProtocolError("unexpected answer to STARTUP: opcode 0x%02x" % op)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                raise ProtocolError("timed out waiting for the server (%.0fs)" % self.timeout)
            except OSError as e:
                raise ProtocolError("connection error: %s" % e)
            if not chunk:
                raise ProtocolError("connection closed by the server")
            buf += chunk
        return bytes(buf)

    def _request(self, opcode, body):
        self.stream = (self.stream + 1) % 32768
        header = struct.pack(">BBhBi", PROTOCOL_VERSION, 0, self.stream, opcode, len(body))
        try:
            self.sock.sendall(header + body)
        except OSError as e:
            raise ProtocolError("send failed: %s" % e)
        while True:
            version, flags, stream, op, length = struct.unpack(">BBhBi", self._recv_exact(9))
            if version & 0x7F != PROTOCOL_VERSION:
                raise ProtocolError("server answered with protocol version %d" % (version & 0x7F))
            payload = self._recv_exact(length)
            if stream != self.stream:
                continue  # server events (stream -1) or stale answers
            r = Reader(payload)
            if flags & 0x02:  # tracing id
                r.take(16)
            if flags & 0x08:  # warnings
                for _ in range(r.short()):
                    print("server warning: %s" % r.string(), file=sys.stderr)
            if flags & 0x04:  # custom payload
                for _ in range(r.short()):
                    r.string()
                    r.bytes()
            if flags & 0x01:
                raise ProtocolError("compressed frame received but compression not negotiated")
            body = payload[r.pos:]
            if op == OP_ERROR:
                er = Reader(body)
                code = er.int()
                raise CqlError(code, er.string())
            return op, body

    def query(self, cql, consistency="ONE", page_size=5000, serial_consistency=None):
        """Run one statement; follows paging and returns a Result with all rows."""
        cl = CONSISTENCY[consistency.upper()]
        paging_state = None
        columns, rows = None, []
        while True:
            flags = 0x04  # page_size
            params = struct.pack(">H", cl)
            extra = struct.pack(">i", page_size)
            if paging_state is not None:
                flags |= 0x08
                extra += struct.pack(">i", len(paging_state)) + paging_state
            if serial_consistency is not None:
                flags |= 0x10
                extra += struct.pack(">H", CONSISTENCY[serial_consistency.upper()])
            body = _long_string(cql) + params + struct.pack(">B", flags) + extra
            op, resp = self._request(OP_QUERY, body)
            if op != OP_RESULT:
                raise ProtocolError("unexpected answer to QUERY: opcode 0x%02x" % op)
            r = Reader(resp)
            kind = r.int()
            if kind == RESULT_VOID:
                return Result("void")
            if kind == RESULT_SET_KEYSPACE:
                return Result("set_keyspace", info=r.string())
            if kind == RESULT_SCHEMA_CHANGE:
                change = r.string()
                target = r.string()
                name = r.string()
                if target != "KEYSPACE":
                    name += "." + r.string()
                return Result("schema_change", info="%s %s %s" % (change, target, name))
            if kind == RESULT_PREPARED:
                return Result("prepared")
            if kind != RESULT_ROWS:
                raise ProtocolError("unknown result kind %d" % kind)
            mflags = r.int()
            ncols = r.int()
            paging_state = r.bytes() if mflags & 0x0002 else None
            global_spec = bool(mflags & 0x0001)
            no_metadata = bool(mflags & 0x0004)
            cols = []
            if not no_metadata:
                if global_spec:
                    r.string()
                    r.string()
                for _ in range(ncols):
                    if not global_spec:
                        r.string()
                        r.string()
                    name = r.string()
                    cols.append((name, _read_type(r)))
            if columns is None:
                columns = cols
            for _ in range(r.int()):
                rows.append([_decode(columns[i][1], r.bytes()) for i in range(ncols)])
            if paging_state is None:
                return Result("rows", columns=[c[0] for c in columns], rows=rows)


# --------------------------------------------------------------------------
# Helpers used by the shell scripts
# --------------------------------------------------------------------------

def wait_ready(host, port, deadline, timeout, security=None):
    """Retry until `SELECT release_version FROM system.local` answers. Returns the version.
    Bad credentials are retried too: a new node creates its default superuser a moment
    after it starts listening."""
    last = None
    while True:
        try:
            with Connection(host, port, timeout, security) as c:
                res = c.query("SELECT release_version FROM system.local")
                if res.rows and res.rows[0][0]:
                    return res.rows[0][0]
                last = "system.local returned no row"
        except (ProtocolError, CqlError) as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise ProtocolError("not ready: %s" % last)
        time.sleep(1.0)


def schema_versions(conn):
    local = conn.query("SELECT schema_version FROM system.local").rows
    peers = conn.query("SELECT peer, schema_version FROM system.peers").rows
    versions = {"local": local[0][0] if local else None}
    for peer, version in peers:
        versions[peer] = version
    return versions


def wait_schema_agreement(conn, deadline):
    while True:
        versions = schema_versions(conn)
        if len(set(versions.values())) == 1:
            return versions
        if time.monotonic() >= deadline:
            raise ProtocolError("no schema agreement: %s" % versions)
        time.sleep(0.5)


def wait_peers(conn, count, deadline):
    """Wait until system.peers lists `count` peers, each with host id and schema version."""
    while True:
        res = conn.query("SELECT peer, data_center, rack, host_id, schema_version FROM system.peers")
        complete = [r for r in res.rows if r[3] is not None and r[4] is not None]
        if len(res.rows) == count and len(complete) == count:
            return res
        if time.monotonic() >= deadline:
            raise ProtocolError("expected %d peers, system.peers has %d: %s"
                                % (count, len(res.rows), res.rows))
        time.sleep(0.5)


def _fmt(v):
    if v is None:
        return "null"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def print_result(res, as_json):
    if as_json:
        if res.kind == "rows":
            print(json.dumps([dict(zip(res.columns, row)) for row in res.rows]))
        else:
            print(json.dumps({"result": res.kind, "info": res.info}))
        return
    if res.kind != "rows":
        print("(%s%s)" % (res.kind, ": " + res.info if res.info else ""))
        return
    table = [res.columns] + [[_fmt(v) for v in row] for row in res.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(res.columns))]
    print(" | ".join(c.ljust(w) for c, w in zip(res.columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in table[1:]:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("(%d row%s)" % (len(res.rows), "" if len(res.rows) == 1 else "s"))


def main(argv=None):
    p = argparse.ArgumentParser(description="Tiny CQL client (native protocol v4, stdlib only).")
    p.add_argument("host", help="node address, e.g. 127.0.0.1")
    p.add_argument("statements", nargs="*", help="CQL statements, run in order on one connection")
    p.add_argument("-p", "--port", type=int, default=9042)
    p.add_argument("--cl", default="ONE", choices=sorted(CONSISTENCY), type=str.upper,
                   help="consistency level (default ONE)")
    p.add_argument("--serial-cl", default=None, choices=["SERIAL", "LOCAL_SERIAL"], type=str.upper,
                   help="serial consistency for conditional (IF ...) statements (server default SERIAL)")
    p.add_argument("--timeout", type=float, default=10.0, help="socket timeout, seconds")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECS",
                   help="first wait up to SECS for the node to answer system.local")
    p.add_argument("--schema-agreement", action="store_true",
                   help="after the statements, wait until local and peers share one schema version")
    p.add_argument("--wait-peers", type=int, metavar="N",
                   help="before the statements, wait until system.peers lists N peers and print them")
    p.add_argument("--json", action="store_true", help="print rows as a JSON array of objects")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--tls-ca", metavar="PEM", help="speak TLS; trust the CA certificates in PEM")
    p.add_argument("--tls-cert", metavar="PEM", help="client certificate (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="client private key (with --tls-cert)")
    p.add_argument("--tls-server-name", metavar="NAME",
                   help="name the node's certificate must carry (default: HOST)")
    p.add_argument("-u", "--user", help="log in as USER (PasswordAuthenticator)")
    p.add_argument("--password-file", metavar="FILE", help="the password for --user (one line)")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (args.tls_cert or args.tls_server_name) and not args.tls_ca:
        p.error("--tls-cert and --tls-server-name need --tls-ca")
    if bool(args.user) != bool(args.password_file):
        p.error("--user and --password-file go together")
    if args.statements == ["-"]:
        # Statements from stdin, one per line: keeps secrets (CREATE ROLE ... PASSWORD) out of `ps`.
        args.statements = [line.strip() for line in sys.stdin if line.strip()]

    try:
        security = Security.from_args(args)
    except (OSError, ssl.SSLError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    try:
        if args.wait > 0:
            version = wait_ready(args.host, args.port, time.monotonic() + args.wait, args.timeout, security)
            if not (args.quiet or args.statements or args.wait_peers is not None
                    or args.schema_agreement):
                print(version)
        with Connection(args.host, args.port, args.timeout, security) as conn:
            if args.wait_peers is not None:
                peers = wait_peers(conn, args.wait_peers, time.monotonic() + max(args.wait, 60.0))
                if not args.quiet:
                    print_result(peers, args.json)
            for stmt in args.statements:
                res = conn.query(stmt, consistency=args.cl, serial_consistency=args.serial_cl)
                if not args.quiet:
                    print_result(res, args.json)
            if args.schema_agreement:
                versions = wait_schema_agreement(conn, time.monotonic() + max(args.wait, 30.0))
                if not args.quiet:
                    print("schema agreement: %s" % next(iter(versions.values())))
    except CqlError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except ProtocolError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
