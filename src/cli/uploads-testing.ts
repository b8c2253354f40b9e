// Test support, for API unit tests (fastify inject): send a document the way the CLI does, its local paths uploaded
// first (cli/uploads.ts) through the real blob routes, so the server sees only upload:sha256: references.

import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { uploadDeployment, uploadEnvironmentAsset, uploadModelAsset } from './uploads.js';
import { Uploader, type BlobSink } from '../client/uploads.js';
import { dumpDeployment, dumpEnvironmentAsset, dumpModelAsset, parseDeploymentObject, parseEnvironmentObject, parseModelObject } from '../spec/index.js';

/** Counts what went through, for tests that check that nothing is sent twice. */
export interface InjectSink extends BlobSink {
  puts: string[];
}

export function injectSink(app: FastifyInstance, token: string): InjectSink {
  const auth = { authorization: `Bearer ${token}` };
  const sink: InjectSink = {
    puts: [],
    async blobsMissing(sha256) {
      const res = await app.inject({ method: 'POST', url: '/api/blobs/missing', headers: auth, payload: { sha256 } });
      if (res.statusCode !== 200) throw new Error(`missing: ${res.statusCode} ${res.body}`);
      return (res.json() as { missing: string[] }).missing;
    },
    async putBlob(sha256, size, body: Readable) {
      sink.puts.push(sha256);
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      const res = await app.inject({ method: 'PUT', url: `/api/blobs/${sha256}`, headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(size) }, payload: Buffer.concat(chunks) });
      if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`put: ${res.statusCode} ${res.body}`);
    },
  };
  return sink;
}

async function upload<T>(sink: BlobSink, prepare: (up: Uploader) => Promise<T>): Promise<T> {
  const up = new Uploader(sink);
  const out = await prepare(up);
  await up.flush();
  return out;
}

/** The deployment document with its paths uploaded; a document that does not validate is returned as it is. */
export async function uploadedDeployment(sink: BlobSink, doc: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { spec } = parseDeploymentObject(doc, { source: 'test' });
  return spec ? dumpDeployment(await upload(sink, (up) => uploadDeployment(spec, up))) : doc;
}

export async function uploadedModel(sink: BlobSink, doc: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { spec } = parseModelObject(doc, { source: 'test' });
  return spec ? dumpModelAsset(await upload(sink, (up) => uploadModelAsset(spec, up))) : doc;
}

export async function uploadedEnvironment(sink: BlobSink, doc: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { spec } = parseEnvironmentObject(doc, { source: 'test' });
  return spec ? dumpEnvironmentAsset(await upload(sink, (up) => uploadEnvironmentAsset(spec, up))) : doc;
}
