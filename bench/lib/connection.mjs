import { connect } from 'node:net';
import { connect as connectTls } from 'node:tls';

/*
 * One keep-alive HTTP/1.1 connection on a raw socket, one request at a time
 * (no pipelining). It parses only what a load generator needs: the status
 * code and Content-Length, so its cost per request stays well below that of
 * node:http's client and more of the shared CPU is left to the server under
 * test. Chunked responses are not supported (neither server sends them).
 */

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CLOSE = /\r\nconnection:[ \t]*close/i;

export class Connection {
  /**
   * @param {string} host
   * @param {number} port
   * @param {(conn: Connection) => void} onClose called once when the socket is gone
   * @param {{ ca: Buffer, session?: Buffer } | undefined} tls TLS to the server, verified against `ca`
   *   (the name checked is the host, e.g. an IP SAN 127.0.0.1); `session` resumes a TLS session
   */
  constructor(host, port, onClose, tls = undefined) {
    this.open = false;
    this.closed = false;
    this.busy = false;
    this.requests = 0;
    this.onClose = onClose;
    this.buffer = null;
    this.callback = null;
    this.unsolicited = null;
    this.startedAt = performance.now();
    this.socket =
      tls === undefined
        ? connect({ host, port, noDelay: true })
        : connectTls({ host, port, noDelay: true, ca: tls.ca, ...(tls.session ? { session: tls.session } : {}) });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
        this.open = true;
        resolve(this);
      });
      this.socket.once('error', reject);
      this.socket.once('close', () => reject(new Error('connection closed before it was established')));
    });
    this.ready.catch(() => {});
    this.socket.on('data', (chunk) => this.#data(chunk));
    this.socket.on('error', (error) => this.#fail(error));
    this.socket.on('close', () => this.#fail(new Error('connection closed')));
  }

  /** Sends one request; `callback(error, status)` is called once when its whole response is in. */
  send(bytes, callback) {
    if (this.busy || this.closed) throw new Error('connection is busy or closed');
    this.busy = true;
    this.callback = callback;
    this.requests += 1;
    this.socket.write(bytes);
  }

  /** Destroys the socket and leaves the pool now (not at the socket's 'close' event, a turn later). */
  close() {
    this.socket.destroy();
    this.#shut();
  }

  #data(chunk) {
    this.buffer = this.buffer === null ? chunk : Buffer.concat([this.buffer, chunk]);
    const end = this.buffer.indexOf(HEADER_END);
    if (end === -1) return;
    const head = this.buffer.latin1Slice(0, end);
    const length = CONTENT_LENGTH.exec(head);
    if (length === null || !head.startsWith('HTTP/1.1 ')) {
      this.#fail(new Error('response without Content-Length or not HTTP/1.1'));
      this.socket.destroy();
      return;
    }
    const total = end + 4 + Number(length[1]);
    if (this.buffer.length < total) return;
    if (this.buffer.length > total) {
      this.#fail(new Error('bytes after the response (pipelining is off)'));
      this.socket.destroy();
      return;
    }
    const status = Number(head.slice(9, 12));
    const closing = CLOSE.test(head);
    this.buffer = null;
    const callback = this.callback;
    this.callback = null;
    this.busy = false;
    if (callback === null) {
      // A response to no request (e.g. a server's 408 on a connection it considers stalled):
      // remember it for the report and drop the connection, whose state is now unknown.
      this.unsolicited = status;
      this.#shut();
      return;
    }
    if (closing) this.#shut();
    callback(null, status);
  }

  #shut() {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.onClose(this);
  }

  #fail(error) {
    const callback = this.callback;
    this.callback = null;
    this.busy = false;
    this.#shut();
    if (callback !== null) callback(error, 0);
  }
}
