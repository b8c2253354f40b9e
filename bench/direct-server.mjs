// DIRECT: a bare Node HTTP server that loads the scoring module in process and answers every POST
// with run(body), serialised as infergate serialises it (Python json.dumps, dist/runtime/py-json.js).
// The minimal equivalent of a debug server's HTTP face: no auth, no routing, no framing, no second
// process. It is the "Direct" of DESIGN.md "Budgets" and also the upstream nginx proxies to.
//
// usage: node bench/direct-server.mjs [--port 0] [--score bench/fixtures/score.mjs] [--tls-cert PEM --tls-key PEM]
// With --tls-cert/--tls-key it serves HTTPS (node:https, HTTP/1.1): DIRECT of the TLS bench (bench/tls.mjs).
// Prints "listening <port>" on stdout once it accepts connections; SIGTERM stops it.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    score: { type: 'string', default: resolve(import.meta.dirname, 'fixtures', 'score.mjs') },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});

const { pythonJsonDumps } = await import(pathToFileURL(resolve(ROOT, 'dist', 'runtime', 'py-json.js')).href);
const mod = await import(pathToFileURL(resolve(values.score)).href);
await mod.init();
const run = mod.run;

const HEALTHY = Buffer.from('Healthy');

const tls = values['tls-cert'] ? { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) } : undefined;
const handler = (req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': HEALTHY.length });
    res.end(HEALTHY);
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    let out;
    let status = 200;
    try {
      out = Buffer.from(pythonJsonDumps(run(body.toString('utf8'))), 'latin1');
    } catch (err) {
      status = 500;
      out = Buffer.from(JSON.stringify({ message: String(err) }));
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': out.length });
    res.end(out);
  });
};
const server = tls ? createHttpsServer({ ...tls, keepAliveTimeout: 65_000 }, handler) : createServer({ keepAliveTimeout: 65_000 }, handler);

server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0)) && server.closeAllConnections();
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
