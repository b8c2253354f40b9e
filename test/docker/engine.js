// Shared by the docker suites: whether they can run here, and cleanup of what they make.
//
// The docker suites need a Docker Engine and the locally built base image (scripts/setup.sh builds it;
// images are never pulled). Without them a developer's `npm test` skips these suites and says why; CI
// sets INFERGATE_REQUIRE_DOCKER=1, so a machine that lost its engine fails instead of passing quietly.
import { execFile } from 'node:child_process';
import { findDockerEngine } from '../../src/backend/docker/backend.js';
export const BASE_IMAGE = 'infergate-python:bookworm';
/** The image Azure's example names; tagged from the base image, as the walkthrough does by hand. */
export const AZURE_IMAGE = 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest';
let checked;
/**
 * Whether the docker suites can run: an engine answers and BASE_IMAGE exists. With
 * INFERGATE_REQUIRE_DOCKER=1 a missing engine or image throws instead (a test's `before` fails).
 */
export function dockerCheck() {
    checked ??= (async () => {
        const engine = await findDockerEngine();
        let skip;
        if (!engine.docker)
            skip = `no Docker Engine answers at ${engine.where}: ${engine.reason}`;
        else {
            const present = await engine.docker.getImage(BASE_IMAGE).inspect().then(() => true, () => false);
            if (!present)
                skip = `the image ${BASE_IMAGE} is missing (scripts/setup.sh builds it; scripts/docker-base-image.sh)`;
        }
        if (skip === undefined)
            return { docker: engine.docker };
        if (process.env.INFERGATE_REQUIRE_DOCKER === '1')
            throw new Error(`INFERGATE_REQUIRE_DOCKER=1 but ${skip}`);
        return { skip };
    })();
    return checked;
}
/**
 * The `skip` option for a suite's tests, decided before node:test registers them (top-level await in the
 * test file): `test(name, { skip: await dockerSkip() }, fn)`. Throws under INFERGATE_REQUIRE_DOCKER=1.
 */
export async function dockerSkip() {
    return (await dockerCheck()).skip ?? false;
}
/** Tags BASE_IMAGE as the image Azure's example names (idempotent). */
export async function tagAzureImage(docker) {
    const [repo, tag] = [AZURE_IMAGE.slice(0, AZURE_IMAGE.lastIndexOf(':')), AZURE_IMAGE.slice(AZURE_IMAGE.lastIndexOf(':') + 1)];
    await docker.getImage(BASE_IMAGE).tag({ repo, tag });
}
/** `docker <args>` with the real CLI (what a user would type to look at the result). */
export function dockerCli(args, input) {
    return new Promise((resolve) => {
        const child = execFile('docker', args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            resolve({ code, stdout, stderr });
        });
        if (input !== undefined)
            child.stdin.end(input);
    });
}
/** Containers labelled with infergate's workspace label; the label value is sha256(workspace dir)[0:16]. */
export async function workspaceContainers(docker, workspaceDir) {
    const { createHash } = await import('node:crypto');
    const label = createHash('sha256').update(workspaceDir).digest('hex').slice(0, 16);
    return docker.listContainers({ all: true, filters: { label: [`io.infergate.workspace=${label}`] } });
}
/** Removes a workspace's containers (a test that failed half-way must not leave them running). */
export async function removeWorkspaceContainers(docker, workspaceDir) {
    for (const c of await workspaceContainers(docker, workspaceDir))
        await docker.getContainer(c.Id).remove({ force: true }).catch(() => { });
}
/** Removes images by tag or id, ignoring ones already gone (never BASE_IMAGE). */
export async function removeImages(docker, names) {
    for (const name of names) {
        if (name === BASE_IMAGE)
            continue;
        await docker.getImage(name).remove({ force: true }).catch(() => { });
    }
}
//# sourceMappingURL=engine.js.map