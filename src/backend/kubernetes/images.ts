// Environment images for Kubernetes computes (issue 17 point 2, docs/kubernetes.md "Environment images").
// An environment infergate builds (a conda file on top of an image, or `build:`) cannot be pulled by the
// cluster from anywhere: the control plane builds it on this machine's Docker Engine with the docker
// backend's code (backend/docker/images.ts, content-hash tags), pushes it to the compute's `--registry` and
// hands back `<registry>/infergate-env@sha256:<digest>`. A pod names the digest, not the tag, so what a
// running deployment runs never changes under it. An environment that only names `image:` is the
// cluster's to pull, as written.

import type Docker from 'dockerode';
import { findDockerEngine } from '../docker/backend.js';
import { EnvironmentImages, ImageError } from '../docker/images.js';
import { errorOf } from '../../errors/index.js';
import type { InstancePlan } from '../../ir/types.js';

type Environment = InstancePlan['environment'];

/** Who asks for an image (the error messages name them). */
export interface ImageRequest {
  compute: string;
  endpoint: string;
  deployment: string;
}

/** Builds and pushes environment images; the backend's tests swap in the real one or skip. */
export interface EnvironmentImagePublisher {
  /**
   * The pushed image by digest (`<registry>/infergate-env@sha256:...`) of an environment that
   * needsImageBuild(). Throws an InfergateError (no engine, build failed, push failed).
   */
  publish(environment: Environment, registry: string, defaultImage: string, request: ImageRequest, log: (line: string) => void): Promise<string>;
}

/** Whether infergate must build the environment's image (the docker backend's rule: custom containers run theirs). */
export function needsImageBuild(environment: Environment): boolean {
  return environment.build !== undefined || (environment.condaFile !== undefined && environment.inferenceConfig === undefined);
}

/** What is built, for messages. */
export function buildWhat(environment: Environment): string {
  return environment.build !== undefined ? `build context ${environment.build.path}` : 'a conda file on top of an image';
}

/** The repository built images go to in a registry (`myregistry.azurecr.io` or `host:port/path`). */
export function imageRepository(registry: string): string {
  return `${registry.replace(/\/+$/, '')}/infergate-env`;
}

/**
 * The real publisher: this machine's Docker Engine (DOCKER_HOST or /var/run/docker.sock), found when first
 * needed, so a control plane whose computes never build starts without one.
 */
export class DockerImagePublisher implements EnvironmentImagePublisher {
  private engine: Promise<{ docker: Docker; images: EnvironmentImages } | { where: string; reason: string }> | undefined;
  /** Digests pushed by this process, by `<repository>:<tag>`: a refresh or another deployment pushes nothing. */
  private readonly pushed = new Map<string, Promise<string>>();

  constructor(private readonly find: () => ReturnType<typeof findDockerEngine> = () => findDockerEngine()) {}

  async publish(environment: Environment, registry: string, defaultImage: string, request: ImageRequest, log: (line: string) => void): Promise<string> {
    const engine = await this.connect();
    if (!('docker' in engine)) {
      throw errorOf('KubernetesImageNeedsEngine', { ...request, what: buildWhat(environment), where: engine.where, reason: engine.reason });
    }
    let local: string;
    try {
      local = await engine.images.resolve(environment, defaultImage, log);
    } catch (e) {
      throw e instanceof ImageError ? e.error : e;
    }
    const repository = imageRepository(registry);
    const tag = local.slice(local.lastIndexOf(':') + 1);
    const remote = `${repository}:${tag}`;
    let push = this.pushed.get(remote);
    if (push) {
      log(`environment image: ${remote} is pushed already`);
    } else {
      push = this.push(engine.docker, local, repository, tag, registry, request, log);
      this.pushed.set(remote, push);
      // A failed push is tried again by the next apply (the registry may be back).
      push.catch(() => this.pushed.delete(remote));
    }
    const digest = await push;
    return `${repository}@${digest}`;
  }

  private connect() {
    this.engine ??= this.find().then((e) => (e.docker ? { docker: e.docker, images: new EnvironmentImages(e.docker) } : { where: e.where, reason: e.reason }));
    // An engine that did not answer is looked for again next time (dockerd may have been started since).
    void this.engine.then((e) => {
      if (!('docker' in e)) this.engine = undefined;
    });
    return this.engine;
  }

  private async push(docker: Docker, local: string, repository: string, tag: string, registry: string, request: ImageRequest, log: (line: string) => void): Promise<string> {
    const remote = `${repository}:${tag}`;
    const fail = (reason: string) => errorOf('KubernetesImagePushFailed', { image: remote, registry, compute: request.compute, reason });
    const started = Date.now();
    log(`environment image: pushing ${local} to ${remote}`);
    try {
      await docker.getImage(local).tag({ repo: repository, tag });
    } catch (e) {
      throw fail((e as Error).message);
    }
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await docker.getImage(remote).push({ authconfig: {} } as object)) as NodeJS.ReadableStream;
    } catch (e) {
      throw fail((e as Error).message);
    }
    const result = await new Promise<{ error?: string; digest?: string }>((resolve) => {
      let digest: string | undefined;
      let error: string | undefined;
      docker.modem.followProgress(
        stream,
        (err: Error | null) => resolve({ ...(err || error ? { error: err?.message ?? error } : {}), ...(digest ? { digest } : {}) }),
        (event: { status?: string; id?: string; error?: string; errorDetail?: { message?: string }; aux?: { Digest?: string } }) => {
          if (event.aux?.Digest) digest = event.aux.Digest;
          if (event.error) error = event.errorDetail?.message ?? event.error;
          // Per-layer lines, not the byte progress (dozens of events per layer).
          else if (event.status && event.id && /^(Pushed|Layer already exists|Mounted from)/.test(event.status)) log(`image push: ${event.id}: ${event.status}`);
        },
      );
    });
    if (result.error !== undefined) throw fail(result.error);
    const digest = result.digest ?? (await repoDigest(docker, remote, repository));
    if (!digest) throw fail('the engine reported no digest for the pushed image');
    log(`environment image: pushed ${repository}@${digest} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return digest;
  }
}

/** The digest the engine recorded for `repository` after a push (older engines send no aux event). */
async function repoDigest(docker: Docker, image: string, repository: string): Promise<string | undefined> {
  const info = await docker.getImage(image).inspect().catch(() => undefined);
  const entry = info?.RepoDigests?.find((d) => d.startsWith(`${repository}@`));
  return entry?.slice(repository.length + 1);
}
