// GET /swagger.json for JavaScript/TypeScript scoring modules, as azmlinfsrv builds it (contract §5.7):
// `?version=` 2 / 2.0 (the default), 3 / 3.0 or 3.1; the app root's swagger.json (version 2) or
// swagger<ver>.json served as it is; otherwise the template with ServiceInput / ServiceOutput filled in.
// The templates are the JSON files the Python worker uses too (python/swagger{2,3}_template.json), so a
// JavaScript and a Python deployment describe themselves identically. Built once per instance.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from './log.js';
import { messageBody } from './scorer.js';
import { pythonJsonDumps } from './py-json.js';

const TEMPLATE_DIR = fileURLToPath(new URL('./python/', import.meta.url));

interface Builder {
  version: string;
  aliases: string[];
  template: string;
  userFiles: string[];
}

const BUILDERS: Builder[] = [
  { version: '2', aliases: ['2', '2.0'], template: 'swagger2_template.json', userFiles: ['swagger.json', 'swagger2.json'] },
  { version: '3', aliases: ['3', '3.0'], template: 'swagger3_template.json', userFiles: ['swagger3.json'] },
  { version: '3.1', aliases: ['3.1'], template: 'swagger3_template.json', userFiles: ['swagger3.1.json'] },
];
const ALIASES = new Set(BUILDERS.flatMap((b) => b.aliases));

/** What an undecorated run() is described with (azmlinfsrv: both schemas `{"type": "object", "example": {}}`). */
export const UNDECLARED_SCHEMA = { type: 'object', example: {} };

export interface SwaggerAnswer {
  status: number;
  body: Buffer;
}

export class Swaggers {
  private constructor(
    private readonly docs: Map<string, Buffer>,
    readonly versions: string[],
  ) {}

  /**
   * @param appRoot where a user's own swagger files are looked for
   * @param inputSchema ServiceInput; @param outputSchema ServiceOutput
   */
  static build(appRoot: string, inputSchema: unknown, outputSchema: unknown, env: NodeJS.ProcessEnv = process.env): Swaggers {
    const prefix = (env.SERVICE_PATH_PREFIX ?? '').replace(/^\/+|\/+$/g, '');
    const substitutions: [string, string][] = [
      ['$SERVICE_NAME$', env.SERVICE_NAME ?? 'ML service'],
      ['$SERVICE_VERSION$', env.SERVICE_VERSION ?? '1.0'],
      ['$PATH_PREFIX$', prefix ? `/${prefix}` : ''],
    ];
    const docs = new Map<string, Buffer>();
    const versions: string[] = [];
    for (const b of BUILDERS) {
      let doc: unknown;
      try {
        const own = b.userFiles.map((f) => join(appRoot, f)).find((p) => existsSync(p));
        if (own !== undefined) {
          doc = JSON.parse(readFileSync(own, 'utf8'));
          log('I', 'azmlinfsrv.swagger', `Loaded user's swagger file for version [${b.version}] from ${own}`);
        } else {
          let text = readFileSync(join(TEMPLATE_DIR, b.template), 'utf8');
          for (const [k, v] of substitutions) text = text.split(k).join(v);
          const d = JSON.parse(text) as { openapi?: string; definitions?: Record<string, unknown>; components?: { schemas: Record<string, unknown> } };
          const defs = d.definitions ?? d.components!.schemas;
          defs.ServiceInput = inputSchema;
          defs.ServiceOutput = outputSchema;
          if (b.version === '3.1') d.openapi = '3.1.0';
          doc = d;
        }
      } catch (err) {
        log('E', 'azmlinfsrv.swagger', `Could not prepare the swagger document for version [${b.version}]: ${(err as Error).message}`);
        continue;
      }
      const body = Buffer.from(pythonJsonDumps(doc), 'latin1');
      for (const a of b.aliases) docs.set(a, body);
      versions.push(b.version);
    }
    if (versions.length > 0) log('I', 'azmlinfsrv.swagger', `Swaggers are prepared for the following versions: [${versions.join(', ')}].`);
    else log('I', 'azmlinfsrv.swagger', 'No swagger is prepared.');
    return new Swaggers(docs, versions);
  }

  /** The answer to GET /swagger.json?version=<version> (404 with azmlinfsrv's messages when there is none). */
  answer(version: string): SwaggerAnswer {
    const body = this.docs.get(version);
    if (body !== undefined) return { status: 200, body };
    const listed = this.versions.join(', ');
    if (!ALIASES.has(version)) {
      return { status: 404, body: messageBody(`Swagger version [${version}] is not valid. Supported versions: [${listed}].`) };
    }
    return {
      status: 404,
      body: messageBody(`Swagger version [${version}] is not supported for the scoring script. Supported swagger versions: [${listed}].`),
    };
  }
}
