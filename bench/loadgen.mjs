import { readFileSync } from 'node:fs';
import { Histogram } from './lib/histogram.mjs';
import { Connection } from './lib/connection.mjs';
import { makeWorkload } from './lib/workload.mjs';

/*
 * One load-generator process, forked by run.mjs; it receives one job over IPC,
 * runs it, sends back the result and exits. Two modes:
 *
 * - open: requests are sent on a schedule fixed in advance (Poisson or evenly
 *   spaced arrivals at `rate` per second), whatever the server does. Sends go
 *   out on every response event and on a timer (Node's timers tick in whole
 *   milliseconds, so a send can leave up to ~1 ms late: reported as generator
 *   lag, and counted in latency). `spin: true` polls with setImmediate instead:
 *   sends leave within microseconds, but the generator then keeps a core busy,
 *   which on a 2-core machine starves the server it measures. A slow
 *   response delays no later request: when every connection is busy a new one
 *   is opened (up to maxConnections), beyond that requests wait in a queue,
 *   and their latency still counts from the intended send time. That is what
 *   a closed-loop tool hides (coordinated omission).
 * - closed: `connections` connections each send their next request as soon as
 *   the previous answer is in: the maximum throughput, with latencies measured
 *   from the actual send.
 *
 * Only requests whose intended (open) or completion (closed) time falls in the
 * measured window, after the warm-up, are counted. Every run is bounded: the
 * schedule ends after warmupS + durationS, then outstanding requests get at
 * most graceMs before they are counted as unfinished.
 */

const now = () => performance.now();

class Recorder {
  constructor() {
    this.latency = new Histogram();
    this.service = new Histogram();
    this.lag = new Histogram();
    this.byKind = new Map();
    this.statuses = {};
    this.errors = {};
    this.completed = 0;
    this.ok = 0;
  }

  response(kind, status, latencyMs, serviceMs, lagMs) {
    this.completed += 1;
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) this.ok += 1;
    this.latency.recordMs(latencyMs);
    this.service.recordMs(serviceMs);
    this.lag.recordMs(lagMs);
    let h = this.byKind.get(kind);
    if (h === undefined) this.byKind.set(kind, (h = new Histogram()));
    h.recordMs(latencyMs);
  }

  error(reason) {
    this.errors[reason] = (this.errors[reason] ?? 0) + 1;
  }

  toJSON() {
    return {
      completed: this.completed,
      ok: this.ok,
      statuses: this.statuses,
      errors: this.errors,
      latency: this.latency.toJSON(),
      service: this.service.toJSON(),
      lag: this.lag.toJSON(),
      byKind: Object.fromEntries([...this.byKind].map(([k, h]) => [k, h.toJSON()])),
    };
  }
}

/** A FIFO whose shift is O(1) (Array.prototype.shift is O(n), quadratic under overload). */
class Queue {
  constructor() {
    this.items = [];
    this.head = 0;
  }

  get length() {
    return this.items.length - this.head;
  }

  push(item) {
    this.items.push(item);
  }

  peek() {
    return this.items[this.head];
  }

  shift() {
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  *[Symbol.iterator]() {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i];
  }
}

class Pool {
  constructor(job) {
    this.job = job;
    // TLS: the CA file to verify the server against. Sessions are not resumed: every new
    // connection is a full handshake, the costlier case.
    this.tls = job.tls === undefined ? undefined : { ca: readFileSync(job.tls.caFile) };
    this.idle = [];
    this.all = new Set();
    this.opened = 0;
    this.onUnsolicited = () => {};
  }

  async open(n) {
    const conns = [];
    for (let i = 0; i < n; i++) conns.push(this.#connect());
    await Promise.all(conns.map((c) => c.ready));
    for (const c of conns) this.idle.push(c);
  }

  #connect() {
    const conn = new Connection(
      this.job.host,
      this.job.port,
      (c) => {
        if (c.unsolicited !== null) this.onUnsolicited(c.unsolicited);
        this.all.delete(c);
        const i = this.idle.indexOf(c);
        if (i !== -1) this.idle.splice(i, 1);
      },
      this.tls,
    );
    this.all.add(conn);
    this.opened += 1;
    return conn;
  }

  /** An idle open connection, a new one (still connecting), or undefined at the limit. */
  take() {
    const conn = this.idle.pop();
    if (conn !== undefined) return conn;
    if (this.all.size < this.job.maxConnections) return this.#connect();
    return undefined;
  }

  closeAll() {
    for (const c of this.all) c.close();
  }
}

function sendWhenReady(conn, bytes, callback) {
  if (conn.open) conn.send(bytes, callback);
  else
    conn.ready.then(
      () => conn.send(bytes, callback),
      (error) => callback(error, 0),
    );
}

async function runOpen(job) {
  const workload = makeWorkload(job.workload, job.stream, job.streams);
  const pool = new Pool(job);
  await pool.open(job.connections);
  const recorder = new Recorder();
  pool.onUnsolicited = (status) => recorder.error(`unsolicited response ${status}`);
  const queue = new Queue();
  const inflight = new Set();
  const rate = job.rate;
  const poisson = (job.arrivals ?? 'poisson') === 'poisson';
  const random = Math.random;
  const t0 = now() + 20;
  const windowStart = t0 + job.warmupS * 1000;
  const scheduleEnd = windowStart + job.durationS * 1000;
  let next = t0;
  let sent = 0;
  let scheduled = 0;

  const advance = () => {
    next += poisson ? -Math.log(1 - random()) * (1000 / rate) : 1000 / rate;
  };

  const start = (conn, item) => {
    item.sentAt = now();
    item.conn = conn;
    inflight.add(item);
    sent += 1;
    sendWhenReady(conn, item.bytes, (error, status) => {
      if (!inflight.has(item)) return;
      inflight.delete(item);
      const done = now();
      sendDue();
      const measured = item.intended >= windowStart;
      if (error !== null) {
        if (measured) recorder.error(item.timedOut ? 'timeout' : `socket: ${error.message}`);
      } else {
        if (measured) {
          recorder.response(
            item.kind,
            status,
            done - item.intended,
            done - item.sentAt,
            item.dispatchedAt - item.intended,
          );
        }
        if (!conn.closed) pool.idle.push(conn);
      }
      drainQueue();
    });
  };

  const drainQueue = () => {
    while (queue.length > 0) {
      const conn = pool.take();
      if (conn === undefined) return;
      start(conn, queue.shift());
    }
  };

  const dispatch = (intended) => {
    const { kind, bytes } = workload.next();
    // Lag is the generator's own lateness: when it got round to this request, not when a
    // connection was free (waiting for one is the server's backpressure, and counts in latency).
    const item = { kind, bytes, intended, dispatchedAt: now(), sentAt: 0, conn: null, timedOut: false };
    if (intended >= windowStart) scheduled += 1;
    const conn = queue.length === 0 ? pool.take() : undefined;
    if (conn === undefined) queue.push(item);
    else start(conn, item);
  };

  // A request still queued timeoutMs after its intended time is given up unsent; one on the wire
  // gets timeoutMs from its send. Timing sent requests from their intended time instead would kill
  // every answer about to arrive once the queue is deep, and the run would never recover.
  const watchdog = setInterval(() => {
    const t = now();
    for (const item of inflight) {
      if (item.sentAt > 0 && t - item.sentAt > job.timeoutMs) {
        item.timedOut = true;
        item.conn.close();
      }
    }
    while (queue.length > 0 && t - queue.peek().intended > job.timeoutMs) {
      const item = queue.shift();
      if (item.intended >= windowStart) recorder.error('timeout');
    }
  }, 50);

  // Sends every request whose time has come. Called by a timer and after every response, so
  // that under load sends leave at I/O events without waiting for the timer's next tick.
  function sendDue() {
    const t = now();
    while (next <= t && next < scheduleEnd) {
      dispatch(next);
      advance();
    }
  }

  await new Promise((resolve) => {
    const pump = () => {
      sendDue();
      if (next >= scheduleEnd) {
        resolve();
        return;
      }
      const wait = next - now();
      if (job.spin === true) {
        // Yield to I/O and come straight back: sends leave within microseconds of their time,
        // at the price of a core kept busy, which the server would otherwise get.
        if (wait > 2) setTimeout(pump, wait - 1);
        else setImmediate(pump);
      } else {
        // Node's timers tick in whole milliseconds: a send with no response to ride on leaves up
        // to about 1 ms late; that lateness is reported as generator lag and counts in latency.
        setTimeout(pump, Math.max(0, wait - 0.5));
      }
    };
    setTimeout(pump, Math.max(0, t0 - now()));
  });

  const graceEnd = now() + job.graceMs;
  while ((inflight.size > 0 || queue.length > 0) && now() < graceEnd) {
    await new Promise((r) => setTimeout(r, 5));
  }
  clearInterval(watchdog);
  let unfinished = 0;
  for (const item of [...inflight, ...queue]) if (item.intended >= windowStart) unfinished += 1;
  if (unfinished > 0) recorder.errors['unfinished'] = unfinished;
  pool.closeAll();
  return {
    mode: 'open',
    offeredRate: rate,
    arrivals: poisson ? 'poisson' : 'uniform',
    windowS: job.durationS,
    scheduled,
    sent,
    connectionsOpened: pool.opened,
    ...recorder.toJSON(),
  };
}

async function runClosed(job) {
  const workload = makeWorkload(job.workload, job.stream, job.streams);
  const pool = new Pool({ ...job, maxConnections: job.connections });
  await pool.open(job.connections);
  const recorder = new Recorder();
  pool.onUnsolicited = (status) => recorder.error(`unsolicited response ${status}`);
  const t0 = now();
  const windowStart = t0 + job.warmupS * 1000;
  const end = windowStart + job.durationS * 1000;
  let active = 0;
  await new Promise((resolve) => {
    const loop = (conn) => {
      if (now() >= end) {
        active -= 1;
        if (active === 0) resolve();
        return;
      }
      const { kind, bytes } = workload.next();
      // reconnect: one request per connection, timed from the connection's start (handshake included).
      const sentAt = job.reconnect === true ? conn.startedAt : now();
      conn.send(bytes, (error, status) => {
        const done = now();
        if (done >= windowStart && done < end) {
          if (error !== null) recorder.error(`socket: ${error.message}`);
          else recorder.response(kind, status, done - sentAt, done - sentAt, 0);
        }
        if (job.reconnect === true) conn.close();
        if (error !== null || conn.closed || job.reconnect === true) {
          const fresh = pool.take();
          if (fresh === undefined) {
            active -= 1;
            if (active === 0) resolve();
            return;
          }
          fresh.ready.then(
            () => loop(fresh),
            () => {
              active -= 1;
              if (active === 0) resolve();
            },
          );
          return;
        }
        loop(conn);
      });
    };
    const conns = pool.idle.splice(0);
    active = conns.length;
    for (const c of conns) loop(c);
    setTimeout(resolve, end - t0 + job.graceMs).unref();
  });
  pool.closeAll();
  return {
    mode: 'closed',
    connections: job.connections,
    windowS: job.durationS,
    connectionsOpened: pool.opened,
    ...recorder.toJSON(),
  };
}

process.once('message', (job) => {
  const cpuBefore = process.cpuUsage();
  const wallBefore = now();
  (job.mode === 'open' ? runOpen(job) : runClosed(job)).then(
    (result) => {
      const cpu = process.cpuUsage(cpuBefore);
      result.loadgenCpuPercent = Math.round(((cpu.user + cpu.system) / 1000 / (now() - wallBefore)) * 100);
      process.send({ result }, () => process.exit(0));
    },
    (error) => {
      process.send({ error: String(error?.stack ?? error) }, () => process.exit(1));
    },
  );
});
