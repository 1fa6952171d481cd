import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PendingList } from './server.js';

interface Item {
  readonly id: number;
  prev: Item | undefined;
  next: Item | undefined;
}

function walk(list: PendingList<Item>): number[] {
  const ids: number[] = [];
  for (let item = list.first; item !== undefined; item = item.next) ids.push(item.id);
  return ids;
}

describe('PendingList', () => {
  it('keeps arrival order through any mix of adds and deletes, like an array would', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(-1), fc.nat({ max: 20 })), { maxLength: 200 }), (ops) => {
        const list = new PendingList<Item>();
        const model: Item[] = [];
        let next = 0;
        for (const op of ops) {
          if (op === -1 || model.length === 0) {
            const item: Item = { id: next++, prev: undefined, next: undefined };
            list.add(item);
            model.push(item);
          } else {
            const [item] = model.splice(op % model.length, 1);
            list.delete(item!);
            assert.equal(item!.prev, undefined, 'a deleted item still points into the list');
            assert.equal(item!.next, undefined, 'a deleted item still points into the list');
          }
          assert.deepEqual(
            walk(list),
            model.map((i) => i.id),
          );
          assert.equal(list.first, model[0]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
