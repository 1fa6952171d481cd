/**
 * Runs the work handed to it one at a time, in the order handed; a failure reaches its own
 * caller and does not stop the work after it. For writes of one process that must not race
 * each other (an audit chain's appends; Paxos rounds on one Cassandra partition).
 */
export class Serially {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T> | T): Promise<T> {
    const next = this.#tail.then(work);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
