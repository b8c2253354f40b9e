// Instance isolation on the process backend (issue 9, item 5; DESIGN.md "Reliability and security
// principles": instances are untrusted code that can read only their own instance directory).
//
// When the server runs as root, every instance (its host and the Python workers the host starts) runs
// under a uid of its own, taken from the subordinate uid range of the system user `infergate-instance`
// (/etc/subuid), with that user's group as its only group. One uid per instance, not one uid for all:
// processes of the same uid can read each other's files, signal each other and read each other's
// /proc/<pid>/environ (environment variables of another deployment, which may hold its secrets), so a
// shared uid would isolate instances from the workspace but not from each other. The uids need no
// /etc/passwd entry (as OpenShift runs containers under arbitrary uids); USER and LOGNAME are set so
// Python's getpass.getuser() still answers.
//
// The workspace is the server's alone (0700: state.db, keys, tokens, server.lock, assets/, logs/ are out
// of reach whatever their own modes). Instance directories and built Python environments live outside
// it, under /var/lib/infergate/<hash of the workspace>/ (placeReachable), linked from the workspace as
// instances/ and envs/; the folders on the way are 0711 (passable, not listable), an instance directory
// is 0700 owned by the instance's uid, and an environment is readable by every instance that uses it.
//
// Without root (or without util-linux's setpriv, or when the user cannot be created) isolation is off,
// and the server log and every instance's console log say so once.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { chmod, lchown, lstat, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const INSTANCE_USER = 'infergate-instance';
/**
 * The default subordinate range: 65536 uids from 0x70000000, which systemd's uid allocation plan leaves
 * unused (below it: nspawn containers' ranges; above: signed-int trouble and systemd's foreign range).
 * An /etc/subuid entry for infergate-instance takes precedence; setup.sh and the server write this one
 * when there is none, so other tools that allocate ranges (podman, newuidmap) see it taken.
 */
export const DEFAULT_UID_RANGE = { base: 0x70000000, count: 65536 } as const;

export type Isolation =
  | { on: true; user: string; gid: number; base: number; count: number; setpriv: string }
  | { on: false; reason: string };

/** Program paths tried for setpriv (util-linux), as for the pdeathsig wrapper. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

/**
 * Decides whether instances run isolated, creating the instance user and its uid range when the
 * server is root and they are missing. INFERGATE_INSTANCE_ISOLATION=off turns it off (debugging only).
 */
export function detectIsolation(env: NodeJS.ProcessEnv = process.env): Isolation {
  if (env.INFERGATE_INSTANCE_ISOLATION === 'off') return { on: false, reason: 'INFERGATE_INSTANCE_ISOLATION=off' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { on: false, reason: 'the server does not run as root, so it cannot run instances as another user' };
  }
  const setpriv = SETPRIV.find((p) => existsSync(p));
  if (setpriv === undefined) return { on: false, reason: 'util-linux setpriv is not installed' };
  let entry = passwdEntry(INSTANCE_USER);
  if (entry === undefined) {
    const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', INSTANCE_USER], { encoding: 'utf8', timeout: 10_000 });
    entry = passwdEntry(INSTANCE_USER);
    if (entry === undefined) return { on: false, reason: `the user ${INSTANCE_USER} does not exist and useradd failed (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})` };
  }
  const range = subordinateRange(INSTANCE_USER);
  if (range === 'overlap') return { on: false, reason: `the uid range ${rangeText(DEFAULT_UID_RANGE)} overlaps another entry of /etc/subuid; give ${INSTANCE_USER} a range of its own there` };
  if (range === undefined) {
    // Recorded so that other range allocators leave it alone; the range is used either way.
    spawnSync('usermod', ['--add-subuids', rangeText(DEFAULT_UID_RANGE), INSTANCE_USER], { stdio: 'ignore', timeout: 10_000 });
  }
  const { base, count } = range ?? DEFAULT_UID_RANGE;
  return { on: true, user: INSTANCE_USER, gid: entry.gid, base, count, setpriv };
}

function rangeText(r: { base: number; count: number }): string {
  return `${r.base}-${r.base + r.count - 1}`;
}

function passwdEntry(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 10_000 });
  const f = r.status === 0 ? r.stdout.trim().split(':') : [];
  return f.length >= 4 ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}

/** The user's own /etc/subuid range; 'overlap' when the default range collides with another user's. */
function subordinateRange(user: string): { base: number; count: number } | 'overlap' | undefined {
  let text = '';
  try {
    text = readFileSync('/etc/subuid', 'utf8');
  } catch {
    return undefined;
  }
  let overlap = false;
  for (const line of text.split('\n')) {
    const [name, b, c] = line.trim().split(':');
    const base = Number(b);
    const count = Number(c);
    if (!name || !Number.isInteger(base) || !Number.isInteger(count) || count <= 0) continue;
    if (name === user) return { base, count };
    if (base < DEFAULT_UID_RANGE.base + DEFAULT_UID_RANGE.count && DEFAULT_UID_RANGE.base < base + count) overlap = true;
  }
  return overlap ? 'overlap' : undefined;
}

/**
 * Hands out instance uids. Round-robin from a random start, never the lowest free one: a uid given up
 * by a stopped instance is reused as late as possible, so what its processes left outside its instance
 * directory (a file in /dev/shm) is not at once another deployment's.
 */
export class UidPool {
  private readonly inUse = new Set<number>();
  private next: number;

  constructor(private readonly base: number, private readonly count: number) {
    this.next = Math.floor(Math.random() * count);
  }

  allocate(): number {
    // Another server on this machine (another workspace) draws from the same range: a uid that has a
    // process, ours or not, is skipped.
    const live = liveUids(this.base, this.count);
    for (let i = 0; i < this.count; i++) {
      const uid = this.base + ((this.next + i) % this.count);
      if (!this.inUse.has(uid) && !live.has(uid)) {
        this.next = (this.next + i + 1) % this.count;
        this.inUse.add(uid);
        return uid;
      }
    }
    throw new Error(`all ${this.count} instance uids are in use`);
  }

  /** Marks a uid taken that an earlier server gave out and that is still in use (an adopted container). */
  reserve(uid: number): void {
    this.inUse.add(uid);
  }

  release(uid: number): void {
    this.inUse.delete(uid);
  }
}

/** Real uids within [base, base + count) that some process runs as (/proc/<pid>/status). */
function liveUids(base: number, count: number): Set<number> {
  const out = new Set<number>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      const uid = m ? Number(m[1]) : -1;
      if (uid >= base && uid < base + count) out.add(uid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * setpriv arguments that run a program as an instance uid: no supplementary groups (root's would
 * otherwise stay), and no_new_privs, so a set-user-ID program (su, sudo, a planted binary) cannot give
 * the instance its privileges back.
 */
export function asInstance(iso: Extract<Isolation, { on: true }>, uid: number): string[] {
  return ['--reuid', String(uid), '--regid', String(iso.gid), '--clear-groups', '--no-new-privs'];
}

/**
 * Kills every process of an instance uid: whatever the instance's code left running (a double-forked
 * daemon escapes the parent-death signal) dies with the instance, before its uid is used again.
 * kill(-1) as that uid reaches exactly the processes of that uid (kill(2)).
 */
export function killAllOf(iso: Extract<Isolation, { on: true }>, uid: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(iso.setpriv, [...asInstance(iso, uid), '--', '/bin/sh', '-c', 'kill -KILL -1 2>/dev/null; exit 0'], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

/**
 * Gives a freshly filled instance directory to its uid. lchown and no descent into links: the tree was
 * written by the storage initializer (our code, as the server's user) and holds no links, but a change
 * of owner must never follow one out of the directory whatever is there.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await lchown(dir, uid, gid);
  const st = await lstat(dir);
  if (!st.isDirectory()) return;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, uid, gid);
    else await lchown(p, uid, gid);
  }
}

/**
 * Makes a tree readable (and, where the owner may execute, executable) by everyone who can reach it:
 * a built Python environment is shared read-only by every instance that needs it, whatever umask the
 * server was started with.
 */
export async function shareTree(dir: string): Promise<void> {
  const st = await lstat(dir);
  if (st.isSymbolicLink()) return;
  const mode = st.mode & 0o7777;
  const x = st.isDirectory() || (mode & 0o100) !== 0 ? 0o055 : 0o044;
  if ((mode & x) !== x) await chmod(dir, mode | x);
  if (!st.isDirectory()) return;
  for (const e of await readdir(dir)) await shareTree(join(dir, e));
}

/** Where isolated instances' directories and the built Python environments live (INFERGATE_INSTANCE_ROOT). */
export function instanceRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.INFERGATE_INSTANCE_ROOT && env.INFERGATE_INSTANCE_ROOT !== '' ? resolve(env.INFERGATE_INSTANCE_ROOT) : '/var/lib/infergate';
}

/** The workspace trees an instance must reach by path. */
const REACHABLE = ['instances', 'envs'] as const;
const OWNER_FILE = 'workspace';

/**
 * Puts the trees instances read (their instance directories, the built Python environments) where an
 * instance uid can reach them, and closes the workspace (0700) to them entirely.
 *
 * An instance can reach a path only if it may search every folder on the way, and a workspace usually
 * sits in a home folder that is 0700 (root's /root, Debian 12's homes): making that searchable would
 * open every world-readable file in it to instances. So the two trees live under
 * <root>/<hash of the workspace path>/ (0711 all the way: passable, not listable) and the workspace
 * keeps `instances` and `envs` as links to them: the server reaches them through the workspace as
 * before, instances are given the real paths. A tree found as a real folder (a workspace an earlier,
 * unisolated server used) is moved there, or removed if it cannot be (instances are filled afresh,
 * environments rebuilt). Trees of workspaces that no longer exist are removed.
 */
export function placeReachable(workspace: string, root: string): { instancesDir: string; envsDir: string } {
  mkdirSync(workspace, { recursive: true, mode: 0o700 });
  chmodSync(workspace, 0o700);
  const shared = join(root, createHash('sha256').update(workspace).digest('hex').slice(0, 16));
  mkdirSync(shared, { recursive: true, mode: 0o711 });
  chmodSync(root, 0o711);
  chmodSync(shared, 0o711);
  writeFileSync(join(shared, OWNER_FILE), `${workspace}\n`, { mode: 0o600 });
  for (const name of readdirSync(root)) {
    const other = join(root, name);
    if (other === shared) continue;
    let owner: string;
    try {
      owner = readFileSync(join(other, OWNER_FILE), 'utf8').trim();
    } catch {
      continue; // not ours
    }
    if (owner !== '' && !existsSync(owner)) rmSync(other, { recursive: true, force: true });
  }
  for (const name of REACHABLE) {
    const target = join(shared, name);
    const link = join(workspace, name);
    let st;
    try {
      st = lstatSync(link);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink() && readlinkSync(link) === target && existsSync(target)) {
      chmodSync(target, 0o711);
      continue;
    }
    if (st?.isDirectory() && !existsSync(target)) {
      try {
        renameSync(link, target);
      } catch {
        rmSync(link, { recursive: true, force: true }); // another filesystem
      }
    } else if (st) rmSync(link, { recursive: true, force: true });
    mkdirSync(target, { recursive: true, mode: 0o711 });
    chmodSync(target, 0o711);
    symlinkSync(target, link);
  }
  return { instancesDir: join(shared, 'instances'), envsDir: join(shared, 'envs') };
}
