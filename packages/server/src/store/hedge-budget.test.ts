import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BudgetedHedgePolicy, HEDGE_BURST } from './hedge-budget.js';

/**
 * The driver's side of a read, as request-handler.js drives it: nextExecution when the first copy
 * starts (a delay arms a hedge); when the hedge fires, nextExecution again as it starts.
 * `slow`: the first copy is not answered within the delay, so an armed hedge fires.
 */
function read(policy: BudgetedHedgePolicy, slow: boolean): 'hedged' | 'armed' | 'unarmed' {
  const plan = policy.newPlan();
  const delay = plan.nextExecution();
  if (delay < 0) return 'unarmed';
  assert.equal(delay, 8);
  if (!slow) return 'armed';
  assert.equal(plan.nextExecution(), -1, 'a plan must never arm a third copy');
  return 'hedged';
}

describe('hedged reads within a budget (BudgetedHedgePolicy)', () => {
  it('hedges every slow read of a burst, then at most its share of reads', () => {
    const policy = new BudgetedHedgePolicy(8, 0.1);
    const first = Array.from({ length: HEDGE_BURST }, () => read(policy, true));
    assert.ok(
      first.every((r) => r === 'hedged'),
      'the first burst of slow reads was not all hedged',
    );
    // A store slow everywhere: every read would pass the delay. Over all the reads, the hedges sent
    // are the burst plus the share of the reads (every read, the burst's too, earns its share).
    const results = Array.from({ length: 10_000 }, () => read(policy, true));
    const hedged = results.filter((r) => r === 'hedged').length;
    const bound = HEDGE_BURST + 0.1 * (HEDGE_BURST + 10_000);
    assert.ok(policy.hedges <= bound, `${policy.hedges} hedges for ${HEDGE_BURST + 10_000} slow reads`);
    assert.ok(policy.hedges >= bound - 2, `only ${policy.hedges} hedges for ${HEDGE_BURST + 10_000} slow reads`);
    assert.equal(policy.hedges, HEDGE_BURST + hedged);
    assert.equal(policy.unarmed, 10_000 - hedged);
  });

  it('costs nothing for reads answered before the delay: the bucket stays full', () => {
    const policy = new BudgetedHedgePolicy(8, 0.1);
    for (let i = 0; i < 1000; i++) assert.equal(read(policy, false), 'armed');
    assert.equal(policy.tokens, HEDGE_BURST);
    assert.equal(policy.hedges, 0);
    assert.equal(policy.unarmed, 0);
  });

  it('reads armed together may all fire; the bucket goes below zero and arms nothing until earned back', () => {
    const policy = new BudgetedHedgePolicy(8, 0.5);
    // 150 reads start while the bucket is full (all armed), then all of them pass the delay.
    const plans = Array.from({ length: 150 }, () => policy.newPlan());
    assert.ok(plans.every((p) => p.nextExecution() === 8));
    for (const p of plans) p.nextExecution();
    assert.equal(policy.hedges, 150);
    assert.ok(policy.tokens < 0, `the bucket holds ${policy.tokens}`);
    // Back to one whole token takes (1 - tokens) / share reads, none of them armed.
    const owed = Math.ceil((1 - policy.tokens) / 0.5) - 1;
    for (let i = 0; i < owed; i++) assert.equal(read(policy, true), 'unarmed', `read ${i} of ${owed}`);
    assert.equal(read(policy, true), 'hedged');
  });

  it('a share of 1 hedges every slow read, as an unbounded policy would', () => {
    const policy = new BudgetedHedgePolicy(8, 1);
    const results = Array.from({ length: 5000 }, () => read(policy, true));
    assert.ok(results.every((r) => r === 'hedged'));
  });

  it('refuses a delay or share it cannot honour', () => {
    for (const [delay, share] of [
      [0, 0.1],
      [-1, 0.1],
      [1.5, 0.1],
      [8, 0],
      [8, -0.1],
      [8, 1.01],
      [8, Number.NaN],
    ] as const) {
      assert.throws(() => new BudgetedHedgePolicy(delay, share), RangeError, `${delay}, ${share}`);
    }
  });
});
