/*
 * Tests that need a real server read its address from the environment, which
 * scripts/test.sh sets after starting the servers. Without it they skip, except
 * in CI, where a missing server is a failure: CI must run every test.
 */

export function requiredEnv(name: string): { value: string | undefined; skip: string | false } {
  const value = process.env[name];
  if (value !== undefined && value !== '') return { value, skip: false };
  if (process.env['CI'] === 'true') {
    throw new Error(`${name} is not set; in CI, .ci/run must start the server it names (scripts/test.sh does)`);
  }
  return { value: undefined, skip: `${name} is not set (run the suite with npm test, which starts the servers)` };
}
