import { Socket, type SocketConstructorOpts } from 'node:net';

/*
 * The one place Padlock uses private parts of Node.js: a socket's `_handle`, and for TLS sockets
 * the symbols under which net.Socket keeps its onread option. Every accepted connection, plain or
 * TLS, reads into one shared buffer, and its bytes are handled before the next read (the
 * connection copies what it must keep). A socket of node:net otherwise reads into a fresh 64 KiB
 * allocation per read and wraps what it read in a new ArrayBuffer: malloc took a tenth of a warm
 * lookup's CPU (perf), and sweeping those ArrayBuffers was most of each young-generation GC's
 * pause (docs/performance.md).
 */

/** The buffer every adopted socket reads into; what a read brought is valid until the next read. */
export const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * Moves an accepted socket's handle to a socket that reads into READ_BUFFER (net.Socket's onread
 * option, which net.Server does not offer for the sockets it accepts). Returns the new socket, or
 * undefined when this Node.js does not allow it: the accepted socket is then to be used as it is.
 * Relies on the handle option of net.Socket and the `_handle` property, which net itself uses to
 * pass handles (wire.test.ts checks that sockets are adopted on the Node.js that runs the tests).
 * Only for plain TCP sockets that have not started reading (net.Server's pauseOnConnect).
 */
export function adoptSocket(accepted: Socket, onBytes: (bytes: Buffer) => void): Socket | undefined {
  const inner = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = inner._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function') return undefined;
  let adopted: Socket;
  try {
    adopted = new Socket({
      handle,
      allowHalfOpen: true,
      onread: { buffer: READ_BUFFER, callback: (read: number) => onBytes(READ_BUFFER.subarray(0, read)) },
    } as SocketConstructorOpts);
  } catch {
    return undefined;
  }
  // The accepted socket gives up its handle, then is destroyed, which closes nothing.
  inner._handle = null;
  accepted.destroy();
  return adopted;
}

/** The private symbols under which net.Socket keeps its onread option (internal/stream_base_commons). */
interface OnreadSymbols {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}

/**
 * Found once on a socket made with the onread option: the symbols are not exported, but a socket
 * carries them as its own properties. Undefined when this Node.js keeps the option otherwise.
 */
const ONREAD_SYMBOLS = ((): OnreadSymbols | undefined => {
  const probeBuffer = Buffer.alloc(1);
  const probeCallback = (): void => {};
  const probe = new Socket({ onread: { buffer: probeBuffer, callback: probeCallback } } as SocketConstructorOpts);
  const own = probe as unknown as Record<symbol, unknown>;
  const named = (description: string): symbol | undefined =>
    Object.getOwnPropertySymbols(probe).find((symbol) => symbol.description === description);
  const buffer = named('kBuffer');
  const callback = named('kBufferCb');
  const generator = named('kBufferGen');
  probe.destroy();
  if (buffer === undefined || callback === undefined || generator === undefined) return undefined;
  if (own[buffer] !== probeBuffer || own[callback] !== probeCallback || own[generator] !== null) return undefined;
  return { buffer, callback, generator };
})();

/**
 * Makes a TLS socket that a tls.Server accepted read its decrypted bytes into READ_BUFFER, as
 * adoptSocket does for plain ones: node:tls takes the onread option only for the sockets it
 * connects itself (client side). Sets on the socket what net.Socket's constructor sets for that
 * option and has its TLSWrap handle (a C++ stream like a TCP handle) read into the buffer, as
 * net.Socket does when it starts a handle. Call it in 'secureConnection', before any 'data'
 * listener is added. Returns the bytes the socket had already decrypted (its own buffers, to be
 * handled before anything read later),
 * or undefined when this Node.js does not allow it (the socket is then read with 'data'
 * events); wire.test.ts checks that TLS sockets are switched on the Node.js that runs the tests.
 */
export function readTlsIntoSharedBuffer(socket: Socket, onBytes: (bytes: Buffer) => void): Buffer[] | undefined {
  const symbols = ONREAD_SYMBOLS;
  const own = socket as unknown as Record<symbol, unknown> & {
    _handle?: { useUserBuffer?: (buffer: Buffer) => void } | null;
  };
  const handle = own._handle;
  if (symbols === undefined || handle === null || handle === undefined) return undefined;
  if (typeof handle.useUserBuffer !== 'function' || own[symbols.buffer] !== null) return undefined;
  if (socket.listenerCount('data') > 0 || socket.readableFlowing === true) return undefined;
  // What was decrypted before now waits in the socket's readable buffer.
  const earlier: Buffer[] = [];
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
    earlier.push(chunk);
  }
  handle.useUserBuffer(READ_BUFFER);
  own[symbols.buffer] = READ_BUFFER;
  own[symbols.callback] = (read: number) => onBytes(READ_BUFFER.subarray(0, read));
  own[symbols.generator] = null;
  return earlier;
}
