// environment_variables that change how an interpreter or the dynamic loader starts (issue 9 §7).
//
// Why refuse them, when a deployment runs code of its own anyway: these variables run code *before* and
// *outside* the scoring script — in every process that inherits the environment, including the launcher
// that the process backend runs with the server's own privileges to drop to the instance's user
// (setpriv: LD_PRELOAD there is code run as the server's user, root in a setup as root), in the Node
// instance host, in Python before the host's first line, in any shell a library starts. They look like
// configuration, not code, in a reviewed YAML file: the reported exploit set PYTHONWARNINGS (Python
// imports the module named in a warning category) and BROWSER (what Python's webbrowser runs) and got a
// shell command run as root within 5 s, with no score.py involved. So they are refused unless the
// deployment names them in a tag — explicit, per variable, and Azure-compatible: Azure keeps `tags` as
// free-form strings, so the same file still deploys there.
//
// Sources: ld.so(8) (ENVIRONMENT), python(1) / "Command line and environment" (Python 3.12 docs), bash(1)
// (BASH_ENV, SHELLOPTS, BASHOPTS, PS4, exported functions), dash(1) (ENV), node(1) (NODE_OPTIONS),
// perlrun(1) (PERL5OPT, PERL5LIB), ruby(1) (RUBYOPT), the JDK's JAVA_TOOL_OPTIONS, OpenSSL's config(5)
// (engines and providers are shared libraries), glibc iconv (GCONV_PATH), CVE-2023-4911 (GLIBC_TUNABLES).

import { joinPath, report, type Type } from './schema.js';

/** The tag that lets a deployment set some of these variables: names separated by commas or spaces. */
export const ALLOW_ENV_TAG = 'infergate.allow-environment-variables';

/**
 * Python variables that only switch behaviour on or off and name no code, file or directory to load:
 * allowed. Every other PYTHON* variable is refused, including ones a future Python adds.
 */
const SAFE_PYTHON = new Set([
  'PYTHONUNBUFFERED',
  'PYTHONDONTWRITEBYTECODE',
  'PYTHONHASHSEED',
  'PYTHONIOENCODING',
  'PYTHONUTF8',
  'PYTHONFAULTHANDLER',
  'PYTHONOPTIMIZE',
  'PYTHONNOUSERSITE',
  'PYTHONSAFEPATH',
  'PYTHONDEVMODE',
  'PYTHONTRACEMALLOC',
  'PYTHONMALLOC',
  'PYTHONMALLOCSTATS',
  'PYTHONCOERCECLOCALE',
  'PYTHONINTMAXSTRDIGITS',
  'PYTHONVERBOSE',
  'PYTHONDEBUG',
  'PYTHONASYNCIODEBUG',
  'PYTHONPROFILEIMPORTTIME',
  'PYTHONWARNDEFAULTENCODING',
  'PYTHONNODEBUGRANGES',
  'PYTHON_CPU_COUNT',
  'PYTHON_GIL',
  'PYTHON_COLORS',
]);

/** What the variable does that makes it unsafe, by exact name. */
const UNSAFE: Record<string, string> = {
  BROWSER: "is the command Python's webbrowser module runs (with PYTHONWARNINGS, a shell command at start)",
  BASH_ENV: 'is a file every non-interactive bash runs first',
  ENV: 'is a file sh and dash run when they start',
  SHELLOPTS: 'sets bash options (xtrace with PS4 runs commands) in every bash started',
  BASHOPTS: 'sets bash options in every bash started',
  PS4: 'is expanded, command substitutions included, by every bash that traces',
  NODE_OPTIONS: 'adds Node options (--require, --import: code loaded first) to the instance host',
  PERL5OPT: 'adds perl options (-M: a module loaded first) to every perl started',
  PERL5LIB: 'puts directories first on perl’s module path',
  PERLLIB: 'puts directories first on perl’s module path',
  PERL5DB: 'is code perl runs under its debugger',
  RUBYOPT: 'adds ruby options (-r: a library loaded first) to every ruby started',
  RUBYLIB: 'puts directories first on ruby’s load path',
  JAVA_TOOL_OPTIONS: 'adds JVM options (-javaagent: code loaded first) to every JVM started',
  _JAVA_OPTIONS: 'adds JVM options (-javaagent: code loaded first) to every JVM started',
  JDK_JAVA_OPTIONS: 'adds JVM options (-javaagent: code loaded first) to every java started',
  GCONV_PATH: 'is where glibc’s iconv loads shared libraries from',
  GLIBC_TUNABLES: 'tunes glibc’s loader before any code runs (CVE-2023-4911)',
  OPENSSL_CONF: 'is an OpenSSL configuration, which can load engines and providers (shared libraries)',
  OPENSSL_ENGINES: 'is where OpenSSL loads engines (shared libraries) from',
  OPENSSL_MODULES: 'is where OpenSSL loads providers (shared libraries) from',
};

/** Why `name` is unsafe in a deployment's environment, or undefined when it is not. */
export function unsafeVariable(name: string): string | undefined {
  const n = name.toUpperCase();
  if (n.startsWith('LD_')) return 'changes how the dynamic loader starts every program (shared libraries loaded first, or from elsewhere)';
  if (n.startsWith('PYTHON') && !SAFE_PYTHON.has(n)) {
    return 'changes how Python starts (a module, file or directory it names is imported or run before the scoring script)';
  }
  if (n.startsWith('BASH_FUNC_')) return 'is a bash function that replaces a command in every bash started';
  return Object.hasOwn(UNSAFE, n) ? UNSAFE[n] : undefined;
}

/** The names a deployment's tags let it set (ALLOW_ENV_TAG). */
export function allowedUnsafe(tags: Record<string, string> | undefined): Set<string> {
  const value = tags && Object.hasOwn(tags, ALLOW_ENV_TAG) ? tags[ALLOW_ENV_TAG] : '';
  return new Set(value.split(/[\s,]+/).filter((s) => s !== '').map((s) => s.toUpperCase()));
}

/** The message for a refused variable. */
export function unsafeMessage(name: string, why: string): string {
  return `environment variable '${name}' ${why}; it is refused unless the deployment allows it by name: tags: {${ALLOW_ENV_TAG}: "${name}"}`;
}

/**
 * The deployment document with this rule: each refused variable is reported at its own key (file, line,
 * column; or the --set that gave it), and the document does not decode. It needs the document's node
 * for the keys' positions and its decoded tags for the opt-in, so it wraps the whole document.
 */
export function refuseUnsafeEnvironment<T extends { tags?: Record<string, string> }>(document: Type<T>): Type<T> {
  return {
    label: document.label,
    decode(node, path, cx) {
      const decoded = document.decode(node, path, cx);
      if (node.kind !== 'map') return decoded;
      const vars = node.entries.find((e) => e.key === 'environment_variables')?.value;
      if (vars === undefined || vars.kind !== 'map') return decoded;
      const allowed = allowedUnsafe(decoded?.tags);
      let refused = false;
      for (const e of vars.entries) {
        const why = unsafeVariable(e.key);
        if (why === undefined || allowed.has(e.key.toUpperCase())) continue;
        report(cx, joinPath(joinPath(path, 'environment_variables'), e.key), { pos: e.keyPos, from: e.value.from }, unsafeMessage(e.key, why));
        refused = true;
      }
      return refused ? undefined : decoded;
    },
  };
}
