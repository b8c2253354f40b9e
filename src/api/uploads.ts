// The upload routes (issue 9 item 6, docs/assets.md "Uploads"): `POST /api/blobs/missing` and
// `PUT /api/blobs/<sha256>`. The blob store behind them, and its rules, is control/blobs.ts.

import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { BlobStore, MAX_MISSING_QUERY } from '../control/index.js';
import { errorOf } from '../errors/index.js';
import { isSha256 } from '../util/upload-manifest.js';

export { BlobStore, DEFAULT_MAX_BLOB_BYTES, MAX_MISSING_QUERY } from '../control/index.js';

const shaParams = { type: 'object', properties: { sha256: { type: 'string' } }, required: ['sha256'] } as const;

/** Registers `POST /api/blobs/missing` and `PUT /api/blobs/:sha256` (contributor: uploading is a change). */
export function registerUploadRoutes(app: FastifyInstance, blobs: BlobStore | undefined): void {
  const store = (): BlobStore => {
    if (!blobs) throw errorOf('NoBlobStore');
    return blobs;
  };

  app.post('/api/blobs/missing', {
    config: { role: 'contributor' },
    schema: {
      operationId: 'findMissingBlobs', tags: ['uploads'], summary: 'Which of these file hashes the server does not have yet (ask before uploading)',
      description:
        'Documents never carry file system paths (they are refused): a model path, code folder, conda file or build context is ' +
        'sent as `upload:sha256:<manifest sha256>`. Upload each file the manifest lists with PUT /api/blobs/<sha256>, then the ' +
        'manifest itself: JSON `{"format":"infergate-tree/1","root":"<top-level name>","entries":[{"path":"model","type":"dir"},' +
        '{"path":"model/w.bin","type":"file","sha256":"<hex>","size":<bytes>,"executable":false}]}`, a folder before its contents ' +
        '(docs/assets.md, "Uploads").',
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['sha256'],
        properties: { sha256: { type: 'array', maxItems: MAX_MISSING_QUERY, items: { type: 'string', pattern: '^[0-9a-f]{64}$' } } },
      },
      response: { 200: { type: 'object', properties: { missing: { type: 'array', items: { type: 'string' } } } } },
    },
  }, async (req) => ({ missing: store().missing((req.body as { sha256: string[] }).sha256) }));

  // The body is a raw byte stream, handed to the route unread: its own content-type parser, in a child
  // context so that no other route accepts application/octet-stream.
  void app.register(async (child) => {
    child.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    child.put('/api/blobs/:sha256', {
      config: { role: 'contributor' },
      schema: {
        operationId: 'uploadBlob', tags: ['uploads'], summary: 'Upload one file (application/octet-stream), stored under its SHA-256; the body must hash to the name',
        params: shaParams,
        response: { '2xx': { type: 'object', properties: { sha256: { type: 'string' }, size: { type: 'integer' }, created: { type: 'boolean' } } } },
      },
    }, async (req, reply) => {
      const { sha256 } = req.params as { sha256: string };
      if (!isSha256(sha256)) throw errorOf('Sha256Invalid', { sha256 });
      req.auditTarget = { blob: sha256 };
      const body = req.body as Readable | undefined;
      if (!body || typeof (body as Readable).pipe !== 'function') {
        throw errorOf('BlobBodyMissing');
      }
      const length = req.headers['content-length'];
      const declared = length !== undefined && /^[0-9]+$/.test(length) ? Number(length) : undefined;
      const r = await store().put(sha256, body, declared);
      return reply.status(r.created ? 201 : 200).send({ sha256, size: r.size, created: r.created });
    });
  });
}
