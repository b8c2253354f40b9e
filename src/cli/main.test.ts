// The command line's own parsers, in-process: importing main.ts builds nothing and runs nothing, so
// flags are checked here without a server, a workspace or a child process.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InfergateError } from '../errors/index.js';
import { collect } from './common.js';
import { buildProgram, EXIT, exitCodeOf, expandPrefixes, main, parseTrafficFlag, portNumber, wholeNumber } from './main.js';
import { errorOf } from '../errors/index.js';

function badArgument(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof InfergateError && e.code === 'BadArgument' && message.test(e.message));
}

test('--traffic takes az\'s "blue=90 green=10", spaces or commas between pairs', () => {
  assert.deepEqual(parseTrafficFlag('blue=90 green=10', '--traffic'), { blue: 90, green: 10 });
  assert.deepEqual(parseTrafficFlag('blue=90,green=10', '--traffic'), { blue: 90, green: 10 });
  assert.deepEqual(parseTrafficFlag('  blue=100  ', '--traffic'), { blue: 100 });
  assert.deepEqual(parseTrafficFlag('', '--traffic'), {}, 'an empty map sends no traffic anywhere (az: --traffic "")');
  // Range and sum are the endpoint's validation (spec/), which names the deployment: the flag keeps the number.
  assert.deepEqual(parseTrafficFlag('blue=-5', '--traffic'), { blue: -5 });
  assert.deepEqual(parseTrafficFlag('blue=50 blue=60', '--traffic'), { blue: 60 }, 'the last value of a repeated deployment wins');
});

test('--traffic refuses what is not <deployment>=<whole percent>, naming the flag and the pair', () => {
  badArgument(() => parseTrafficFlag('blue', '--traffic'), /^--traffic: 'blue' is not of the form <deployment>=<percent>/);
  badArgument(() => parseTrafficFlag('blue=90 green=ten', '--traffic'), /'green=ten'/);
  badArgument(() => parseTrafficFlag('blue=9.5', '--mirror-traffic'), /^--mirror-traffic: 'blue=9.5'/);
  badArgument(() => parseTrafficFlag('=10', '--traffic'), /'=10'/);
});

test('--set values are collected across repeats and split on white space ("a=1 b=2" is two overrides)', () => {
  assert.deepEqual(collect('instance_count=2'), ['instance_count=2']);
  assert.deepEqual(collect('a=1  b=2', ['x=0']), ['x=0', 'a=1', 'b=2']);
  assert.deepEqual(collect('   '), []);
});

test('whole-number flags refuse fractions, signs, exponents and trailing junk that parseInt would take', () => {
  const lines = wholeNumber('--lines', 0);
  assert.equal(lines('0'), 0);
  assert.equal(lines('5000'), 5000);
  for (const v of ['', '-1', '1.5', '1e3', '10x', '0x10', 'NaN', '9007199254740993']) {
    badArgument(() => lines(v), new RegExp(`^--lines must be a whole number of at least 0, not '${v.replace(/[.]/g, '\\.')}'$`));
  }
  badArgument(() => wholeNumber('--max-connections', 1)('0'), /at least 1, not '0'/);
});

test('port flags take 0 (any free port) to 65535', () => {
  const port = portNumber('--router-port');
  assert.equal(port('0'), 0);
  assert.equal(port('65535'), 65535);
  badArgument(() => port('65536'), /^--router-port must be a port from 0 to 65535, not '65536'$/);
  badArgument(() => port('80x'), /^--router-port must be a whole number/);
});

test('an unambiguous prefix of a long flag is expanded, as argparse (and so az) does', () => {
  const program = buildProgram();
  assert.deepEqual(expandPrefixes(program, ['online-deployment', 'show', '-n', 'blue', '--endpoint', 'ep']), ['online-deployment', 'show', '-n', 'blue', '--endpoint-name', 'ep']);
  assert.deepEqual(expandPrefixes(program, ['online-endpoint', 'invoke', '--name', 'ep', '--deployment=blue']), ['online-endpoint', 'invoke', '--name', 'ep', '--deployment-name=blue']);
  // Only the flags of the command named: `show` has no --deployment-name, so nothing to expand to.
  assert.deepEqual(expandPrefixes(program, ['online-deployment', 'show', '--deployment=blue']), ['online-deployment', 'show', '--deployment=blue']);
  // Exact flags stay; an ambiguous prefix is left for commander to refuse.
  assert.deepEqual(expandPrefixes(program, ['server', '--max-connections', '5', '--max', '1']), ['server', '--max-connections', '5', '--max', '1']);
  assert.deepEqual(expandPrefixes(program, ['online-endpoint', 'show', '--', '--nam']), ['online-endpoint', 'show', '--', '--nam']);
});

test('a flag parser error ends the command with exit code 2 (argparse\'s) and az\'s "ERROR: (code) message", before any server is contacted', async () => {
  const written: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['online-deployment', 'get-logs', '-n', 'blue', '-e', 'ep', '--lines', '10x', '--server', 'http://127.0.0.1:9']), 2);
    assert.equal(await main(['ml', 'server', '--router-port', '70000']), 2, 'a leading `ml` word is optional');
    assert.equal(await main(['online-endpoint', 'no-such-verb']), 2, 'commander usage errors exit 2');
  } finally {
    process.stderr.write = original;
  }
  const text = written.join('');
  assert.match(text, /ERROR: \(BadArgument\) --lines must be a whole number of at least 0, not '10x'/);
  assert.match(text, /ERROR: \(BadArgument\) --router-port must be a port from 0 to 65535, not '70000'/);
});

test("az's exit codes: 3 for every not-found (az maps each 404 to ResourceNotFoundError), 2 while flags parse, else 1", () => {
  for (const e of [errorOf('EndpointNotFound', { endpoint: 'x' }), errorOf('DeploymentNotFound', { endpoint: 'x', deployment: 'y' })]) assert.equal(exitCodeOf(e, false), EXIT.notFound, e.code);
  assert.equal(exitCodeOf(errorOf('WholeNumberInvalid', { flag: '--lines', min: 0, value: 'x' }), true), EXIT.usage);
  assert.equal(exitCodeOf(errorOf('WholeNumberInvalid', { flag: '--lines', min: 0, value: 'x' }), false), EXIT.error);
  assert.equal(exitCodeOf(new InfergateError('ServerNotFound', 'no server'), false), EXIT.error);
  assert.equal(exitCodeOf(new InfergateError('ValidationFailed', 'bad'), false), EXIT.error);
  assert.deepEqual(EXIT, { ok: 0, error: 1, usage: 2, notFound: 3 });
});
