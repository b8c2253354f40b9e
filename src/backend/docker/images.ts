// Environment images for the docker backend (issue 11 item 2). Azure runs every instance in an image
// made from the deployment's environment: `image` as it is, `image` + `conda_file` as that image with the
// conda file's packages installed, `build: {path, dockerfile_path}` as that Docker build context built.
// Built images are tagged by a hash of what went into them (the base image's id, the conda file, the
// context's bytes) and reused by every deployment that asks for the same; the build's output goes to the
// instance's console log, so get-logs shows it.
//
// Images are never pulled: on machines without a registry a pull hangs or fails slowly, and an image
// infergate would fetch by name is not one the operator chose. An image that is not present fails the
// deployment at once, naming how to provide it (docker load / docker tag).

import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { errorOf, type InfergateError } from '../../errors/index.js';
import type { InstancePlan } from '../../ir/types.js';
import { condaDependencies, isLocalPipEntry } from '../../util/conda.js';
import { CONDA_FILE_LIMIT, readUserFile } from '../../util/files.js';
import { parseYamlData } from '../../util/yaml.js';
import { condaRequirements, importNamesOf, PROVIDED } from '../process/python-env.js';

/** Label on every image infergate builds (and on its containers): what it made, and may remove. */
export const MANAGED_LABEL = 'io.infergate.managed';
/** Bumped when the way images are built changes, so images built the old way are not reused. */
const BUILD_FORMAT = 'infergate-image-1';
const INSTALL_SCRIPT = fileURLToPath(new URL('../../runtime/python/infergate_env_install.py', import.meta.url));
/** Build contexts bigger than this are refused: the context is read into memory to hash and send it. */
const MAX_CONTEXT_BYTES = 512 * 1024 * 1024;

export class ImageError extends Error {
  constructor(readonly error: InfergateError) {
    super(error.message);
  }
}

export class EnvironmentImages {
  /** Builds in progress by tag: instances of one deployment (or of two with the same environment) share one. */
  private readonly building = new Map<string, Promise<void>>();

  constructor(private readonly docker: Docker) {}

  /**
   * The image an instance of `plan` runs, built if needed. Throws ImageError with a coded, worded error
   * (the image is missing, a build failed); `log` gets progress and build output.
   */
  async resolve(environment: InstancePlan['environment'], defaultImage: string, log: (line: string) => void): Promise<string> {
    if (environment.build !== undefined) return this.buildContext(environment.build, log);
    const base = environment.image ?? defaultImage;
    if (environment.image === undefined) log(`environment: no image given; using the default image ${defaultImage} (--docker-image)`);
    const baseId = await this.imageId(base);
    // A custom container runs its image as it is; so does an environment without a conda file.
    if (environment.condaFile === undefined || environment.inferenceConfig !== undefined) {
      log(`environment image: ${base} (${baseId.slice(0, 19)})`);
      return base;
    }
    return this.buildConda(base, baseId, environment.condaFile, log);
  }

  private async imageId(name: string): Promise<string> {
    try {
      const info = await this.docker.getImage(name).inspect();
      return info.Id;
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      const reason = status === 404 ? 'no image of that name' : status === 400 ? 'not a valid image reference' : (e as Error).message;
      throw new ImageError(errorOf('ImageNotFound', { image: name, reason }));
    }
  }

  private async buildConda(base: string, baseId: string, condaFile: string | Record<string, unknown>, log: (line: string) => void): Promise<string> {
    const conda = typeof condaFile === 'string' ? (parseYamlData((await readUserFile(condaFile, { what: 'conda_file', limit: CONDA_FILE_LIMIT })).toString('utf8')) as Record<string, unknown>) : condaFile;
    const deps = condaDependencies(conda);
    const local = deps.pip.filter(isLocalPipEntry);
    if (local.length > 0) log(`environment image: not installing local pip entries (${local.join(', ')}): an image build sees no files of this machine; put them in a build context instead`);
    const pip = deps.pip.filter((p) => !isLocalPipEntry(p) && !p.startsWith('-') && !PROVIDED.has(p.split(/[=<>~!; @[]/)[0].trim().toLowerCase()));
    const spec = { conda, condaFile: '/infergate-env/conda.yaml', pip, imports: importNamesOf(condaRequirements(conda).packages) };
    const specJson = JSON.stringify(spec);
    const tag = `infergate-env:${hash([BUILD_FORMAT, baseId, specJson])}`;
    const dockerfile = [
      `FROM ${baseId}`,
      'COPY conda.yaml spec.json infergate_env_install.py /infergate-env/',
      'RUN python3 /infergate-env/infergate_env_install.py /infergate-env/spec.json',
      '',
    ].join('\n');
    const files = new Map<string, Buffer>([
      ['Dockerfile', Buffer.from(dockerfile)],
      // JSON is YAML: conda reads it as the conda file it came from.
      ['conda.yaml', Buffer.from(JSON.stringify(conda, null, 2))],
      ['spec.json', Buffer.from(specJson)],
      ['infergate_env_install.py', await readFile(INSTALL_SCRIPT)],
    ]);
    await this.build(tag, `${base} + conda file`, files, 'Dockerfile', log);
    return tag;
  }

  private async buildContext(build: { path: string; dockerfilePath: string }, log: (line: string) => void): Promise<string> {
    const files = new Map<string, Buffer>();
    let bytes = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) {
          const st = await stat(p);
          bytes += st.size;
          if (bytes > MAX_CONTEXT_BYTES) throw new ImageError(errorOf('ImageBuildFailed', { tag: '(not built)', source: build.path, reason: `the build context is larger than ${MAX_CONTEXT_BYTES / 1024 / 1024} MiB` }));
          files.set(relative(build.path, p).split('\\').join('/'), await readFile(p));
        }
      }
    };
    try {
      await walk(build.path);
    } catch (e) {
      if (e instanceof ImageError) throw e;
      throw new ImageError(errorOf('ImageBuildFailed', { tag: '(not built)', source: build.path, reason: `the build context cannot be read: ${(e as Error).message}` }));
    }
    if (!files.has(build.dockerfilePath)) {
      throw new ImageError(errorOf('ImageBuildFailed', { tag: '(not built)', source: build.path, reason: `there is no ${build.dockerfilePath} in the build context` }));
    }
    // The engine pulls a FROM image it does not have, even with pull: false: on a machine without a
    // registry that hangs. Every FROM must name an image that is here (or an earlier stage, or scratch).
    for (const from of fromImages(files.get(build.dockerfilePath)!.toString('utf8'))) await this.imageId(from);
    const tag = `infergate-env:${hash([BUILD_FORMAT, build.dockerfilePath, ...[...files].flatMap(([name, content]) => [name, content.toString('base64')])])}`;
    await this.build(tag, build.path, files, build.dockerfilePath, log);
    return tag;
  }

  /** Builds `files` as a context into `tag` unless an image of that tag exists; one build per tag at a time. */
  private async build(tag: string, source: string, files: Map<string, Buffer>, dockerfile: string, log: (line: string) => void): Promise<void> {
    const present = await this.docker.getImage(tag).inspect().then(() => true, () => false);
    if (present) {
      log(`environment image: reusing ${tag} (${source})`);
      return;
    }
    let running = this.building.get(tag);
    if (running) log(`environment image: waiting for ${tag}, which another instance is building`);
    else {
      log(`environment image: building ${tag} from ${source}`);
      running = this.runBuild(tag, source, files, dockerfile, log);
      this.building.set(tag, running);
      void running.finally(() => this.building.delete(tag)).catch(() => {});
    }
    await running;
  }

  private async runBuild(tag: string, source: string, files: Map<string, Buffer>, dockerfile: string, log: (line: string) => void): Promise<void> {
    const started = Date.now();
    const fail = (reason: string) => new ImageError(errorOf('ImageBuildFailed', { tag, source, reason }));
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.buildImage(Readable.from([tarOf(files)]), { t: tag, dockerfile, labels: { [MANAGED_LABEL]: 'true' }, rm: true, forcerm: true, pull: false } as Docker.ImageBuildOptions);
    } catch (e) {
      throw fail((e as Error).message);
    }
    // Layers this build made (a step's " ---> <id>" that was not "Using cache", past the FROM step): the
    // Engine keeps them as untagged images when a later step fails, one more per failed build for ever;
    // they go with the failure. Cached layers and the base image belong to other images and stay.
    const made: string[] = [];
    let step = 0;
    let cached = false;
    const track = (line: string) => {
      const stepLine = /^Step (\d+)\/\d+ :/.exec(line);
      if (stepLine) step = Number(stepLine[1]);
      else if (/^ ---> Using cache$/.test(line)) cached = true;
      else {
        const id = /^ ---> ([0-9a-f]{12,64})$/.exec(line)?.[1];
        if (id !== undefined) {
          if (step > 1 && !cached) made.push(id);
          cached = false;
        }
      }
    };
    const error = await new Promise<string | undefined>((resolve) => {
      let last: string | undefined;
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => resolve(err ? err.message : last),
        (event: { stream?: string; error?: string; errorDetail?: { message?: string } }) => {
          if (event.stream) {
            for (const line of event.stream.split('\n')) {
              if (line.trim() === '') continue;
              track(line.trimEnd());
              log(`image build: ${line.trimEnd()}`);
            }
          }
          if (event.error) {
            last = event.errorDetail?.message ?? event.error;
            log(`image build: ERROR ${last}`);
          }
        },
      );
    });
    if (error !== undefined) {
      // Newest first: each is the parent of the next. Not forced: one another image uses stays.
      for (const id of made.reverse()) await this.docker.getImage(id).remove().catch(() => {});
      throw fail(error);
    }
    log(`environment image: built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** The images a Dockerfile's FROM lines name: not `scratch`, not an earlier stage, not one built from an ARG. */
export function fromImages(dockerfile: string): string[] {
  const stages = new Set<string>();
  const images: string[] = [];
  for (const line of dockerfile.split(/\r?\n/)) {
    const m = /^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(line);
    if (!m) continue;
    const image = m[1];
    if (image.toLowerCase() !== 'scratch' && !stages.has(image.toLowerCase()) && !image.includes('$')) images.push(image);
    if (m[2]) stages.add(m[2].toLowerCase());
  }
  return images;
}

function hash(parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p.length}:${p}`);
  return h.digest('hex').slice(0, 20);
}

/** An uncompressed tar stream (ustar, regular files only) of `files`: what the Engine's build API takes. */
function tarOf(files: Map<string, Buffer>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of files) {
    const header = Buffer.alloc(512);
    const [prefix, base] = name.length > 100 ? splitName(name) : ['', name];
    header.write(base, 0, 100, 'utf8');
    header.write('0000644\0', 100, 'ascii');
    header.write('0000000\0', 108, 'ascii');
    header.write('0000000\0', 116, 'ascii');
    header.write(content.length.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
    header.write('00000000000\0', 136, 'ascii');
    header.write('        ', 148, 'ascii');
    header.write('0', 156, 'ascii');
    header.write('ustar\0', 257, 'ascii');
    header.write('00', 263, 'ascii');
    header.write(prefix, 345, 155, 'utf8');
    let sum = 0;
    for (const b of header) sum += b;
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    blocks.push(header, content);
    const pad = (512 - (content.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

function splitName(name: string): [string, string] {
  const i = name.lastIndexOf('/', 155);
  if (i <= 0 || name.length - i - 1 > 100) throw new ImageError(errorOf('ImageBuildFailed', { tag: '(not built)', source: name, reason: `the path ${name} is too long for the build context` }));
  return [name.slice(0, i), name.slice(i + 1)];
}
