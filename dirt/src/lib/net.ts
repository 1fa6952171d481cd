import { execFileSync } from 'node:child_process';

/*
 * Where the suite's processes listen, so that two DiRT runs (two checkouts, or
 * CI beside a developer) share the machine without sharing a node, a port or
 * a directory. Every address and port the suite uses derives from these; the
 * defaults are the suite's historical ones.
 *
 *   DIRT_NET              the /24 prefix of the suite's addresses (default 127.0.1):
 *                         Cassandra nodes .1-.3 (seeds .1 and .3), Padlock .10,
 *                         the store proxy .20 (its outgoing side .21)
 *   DIRT_JMX_PORT_BASE    node N's JMX port (on 127.0.0.1) is this + 10 N (default 7509: 7519, 7529, 7539)
 *   DIRT_MEMCACHED_PORT   the first memcached port on 127.0.0.1 (default 11400)
 *   DIRT_PORT_BASE        the first TCP port of Padlock and proxy listeners (default 18700);
 *                         0: each listener gets a free port the kernel picks from its
 *                         ephemeral range, kept for that listener's restarts
 *
 * The node dirs (.cassandra/dirt1..3) and the scratch (dirt/results/tmp) are
 * under the checkout the suite runs from, so they never collide with another
 * checkout's run.
 */

function envText(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value.trim() === '' ? fallback : value.trim();
}

function envPort(name: string, fallback: number, allowZero = false): number {
  const text = envText(name, String(fallback));
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535 || (port === 0 && !allowZero)) {
    throw new Error(`${name}=${text} is not a TCP port${allowZero ? ' (or 0)' : ''}`);
  }
  return port;
}

function envNet(): string {
  const net = envText('DIRT_NET', '127.0.1');
  const parts = net.split('.');
  if (parts.length !== 3 || parts[0] !== '127' || !parts.every((p) => /^\d+$/.test(p) && Number(p) <= 255)) {
    throw new Error(`DIRT_NET=${net} is not a loopback /24 prefix such as 127.0.2`);
  }
  return net;
}

export const DIRT_NET = envNet();
export const JMX_PORT_BASE = envPort('DIRT_JMX_PORT_BASE', 7509);
export const MEMCACHED_BASE_PORT = envPort('DIRT_MEMCACHED_PORT', 11400);
export const PORT_BASE = envPort('DIRT_PORT_BASE', 18700, true);

/** Host `n` (1-254) of the suite's /24. */
export function netHost(n: number): string {
  return `${DIRT_NET}.${n}`;
}

/** A port the kernel reports free on `host` now (it binds port 0, reads the port, closes). */
export function ephemeralPort(host: string): number {
  const out = execFileSync(
    process.execPath,
    [
      '-e',
      "const s=require('node:net').createServer();s.listen(0,process.argv[1],()=>{process.stdout.write(String(s.address().port));s.close()})",
      host,
    ],
    { encoding: 'utf8', timeout: 10000 },
  );
  const port = Number(out);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no ephemeral port on ${host}: ${out}`);
  return port;
}
