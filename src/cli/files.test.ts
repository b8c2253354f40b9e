// Every path the CLI reads gets a coded error, at once and in bounded memory (issue 8): `-f /dev/zero`
// used to grow the CLI to 7.9 GB, `-f fifo` waited for a writer, a missing file printed a raw ENOENT.
// The real command (src/cli/main.ts through tsx), with a server URL nothing listens on: every case must be
// refused before the CLI talks to a server.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sourceCliArgs } from './source-cli-testing.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-cli-files-'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'));
  symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'));
  writeFileSync(join(dir, 'big.yml'), '');
  truncateSync(join(dir, 'big.yml'), 5 * 1024 * 1024); // sparse: 5 MiB by stat, nothing on disk
  writeFileSync(join(dir, 'bad.json'), '{"data": ');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI with a 10 s cap and at most 512 MB of heap: reading /dev/zero whole would exceed both. */
function cli(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, sourceCliArgs([...args, '--server', 'http://127.0.0.1:9'], ['--max-old-space-size=512']), { cwd: ROOT, timeout: 10_000, encoding: 'utf8' }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr, ms: performance.now() - t0 });
    });
  });
}

const p = (name: string) => join(dir, name);

test('files named on the command line: coded errors, at once', async () => {
  const cases: [string[], RegExp][] = [
    [['online-endpoint', 'create', '-f', '/dev/zero'], /^ERROR: \(PathNotReadable\) --file '\/dev\/zero' is a character device, not a regular file/],
    [['online-deployment', 'create', '-f', p('fifo')], /^ERROR: \(PathNotReadable\) --file '.*fifo' is a FIFO \(named pipe\), not a regular file/],
    [['online-endpoint', 'update', '-n', 'e', '-f', p('loop-a')], /^ERROR: \(PathNotReadable\) --file '.*loop-a' is a symbolic-link loop \(ELOOP\)/],
    [['online-endpoint', 'create', '-f', dir], /^ERROR: \(PathNotReadable\) --file '.*' is a directory, not a regular file/],
    [['online-endpoint', 'create', '-f', p('missing.yml')], /^ERROR: \(BadArgument\) --file: No such file or directory: '.*missing\.yml'/],
    [['online-endpoint', 'create', '-f', p('big.yml')], /^ERROR: \(FileTooLarge\) --file '.*big\.yml' is 5242880 bytes \(5 MiB\); the limit is 4194304 bytes \(4 MiB\)/],
    [['online-endpoint', 'invoke', '-n', 'e', '--request-file', '/dev/zero'], /^ERROR: \(PathNotReadable\) --request-file '\/dev\/zero' is a character device/],
    [['online-endpoint', 'invoke', '-n', 'e', '--request-file', p('fifo')], /^ERROR: \(PathNotReadable\) --request-file '.*fifo' is a FIFO/],
    [['online-endpoint', 'invoke', '-n', 'e', '--request-file', p('missing.json')], /^ERROR: \(RequestFileInvalid\) --request-file: No such file or directory/],
    [['online-endpoint', 'invoke', '-n', 'e', '--request-file', p('bad.json')], /^ERROR: \(RequestFileInvalid\) --request-file .*bad\.json: not valid JSON/],
    [['model', 'create', '-n', 'm', '-p', '/dev/zero'], /^ERROR: \(PathNotReadable\) the command line: path: '\/dev\/zero' is a character device, not a regular file or directory/],
    [['model', 'create', '-n', 'm', '-p', p('loop-a')], /^ERROR: \(PathNotReadable\) the command line: path: '.*loop-a' is a symbolic-link loop/],
    [['environment', 'create', '-n', 'e', '--image', 'python:3.12', '--conda-file', p('fifo')], /^ERROR: \(PathNotReadable\) the command line: conda_file: '.*fifo' is a FIFO/],
    [['environment', 'create', '-n', 'e', '--image', 'python:3.12', '--conda-file', p('big.yml')], /^ERROR: \(FileTooLarge\) the command line: conda_file: '.*big\.yml' is 5242880 bytes; the limit for conda_file is 1048576 bytes/],
  ];
  // Two at a time: the machine is shared.
  for (let i = 0; i < cases.length; i += 2) {
    const runs = await Promise.all(cases.slice(i, i + 2).map(([args]) => cli(args)));
    runs.forEach((r, j) => {
      const [args, expected] = cases[i + j];
      assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
      assert.match(r.stderr, expected, args.join(' '));
      assert.doesNotMatch(r.stderr, /InternalError|\n\s+at /, 'no stack trace');
      assert.ok(r.ms < 8_000, `${args.join(' ')} took ${r.ms.toFixed(0)} ms`);
    });
  }
});
