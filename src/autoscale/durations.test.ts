import assert from 'node:assert/strict';
import { test } from 'node:test';

import { durationMs, formatDuration, parseDuration, shortDuration } from './durations.js';

test('ISO 8601 durations as Azure writes them, and second-level ones', () => {
  assert.equal(parseDuration('PT5M'), 300_000);
  assert.equal(parseDuration('PT1H'), 3_600_000);
  assert.equal(parseDuration('P1D'), 86_400_000);
  assert.equal(parseDuration('PT10S'), 10_000);
  assert.equal(parseDuration('PT0.5S'), 500);
  assert.equal(parseDuration('PT1M30S'), 90_000);
  assert.equal(parseDuration('pt5m'), 300_000);
  for (const bad of ['', 'P', 'PT', '5M', 'P1Y', 'P1M', 'PT-5M', 'P1DT']) assert.equal(parseDuration(bad), undefined, bad);
  assert.throws(() => durationMs('5m'), /not an ISO 8601 duration/);
});

test('formatting round-trips and prints the form Azure prints', () => {
  for (const [ms, iso] of [[300_000, 'PT5M'], [3_600_000, 'PT1H'], [90_000, 'PT1M30S'], [500, 'PT0.5S'], [86_400_000, 'P1D'], [0, 'PT0S'], [93_784_000, 'P1DT2H3M4S']] as const) {
    assert.equal(formatDuration(ms), iso);
    assert.equal(parseDuration(iso), ms);
  }
  assert.equal(shortDuration(300_000), '5m');
  assert.equal(shortDuration(30_000), '30s');
  assert.equal(shortDuration(90_000), '90s');
  assert.equal(shortDuration(3_600_000), '1h');
});
