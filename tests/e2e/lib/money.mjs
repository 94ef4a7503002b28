// Money as the tests compute it: exact integer micro-USD, as tollgate keeps it (shared by
// budget.test.mjs and redis.test.mjs).
import assert from 'node:assert/strict';

const MILLION = 1_000_000n;

/** A USD amount as the config and CLI read it ("0.15"), as exact integer micro-USD (BigInt). */
export function usdMicros(usd) {
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(String(usd));
  assert.ok(m, `not a USD amount: ${usd}`);
  return BigInt(m[1]) * MILLION + BigInt((m[2] ?? '').padEnd(6, '0'));
}

/** Integer micro-USD as a CLI USD amount with 6 decimals. */
export const usdText = (micros) => `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;

/** The model part: tokens x USD per 1M tokens, summed exactly, rounded half up once. */
export function tokenCost(price, tokensIn, tokensOut) {
  const sum = BigInt(tokensIn) * usdMicros(price.input) + BigInt(tokensOut) * usdMicros(price.output);
  return Number((sum * 2n + MILLION) / (2n * MILLION));
}
