import { Socket, type SocketConstructorOpts } from 'node:net';

/*
 * The one place Padlock uses a private part of Node.js: a socket's `_handle`. Every accepted
 * connection reads into one shared buffer, and its bytes are handled before the next read (the
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
