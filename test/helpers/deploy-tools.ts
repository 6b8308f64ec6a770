// Tools for the install tests: helm (built with `go install`) and kubernetes-validate (PyPI),
// installed on first use by scripts/tools.mjs into node_modules/.cache/weft-tools. Without go or
// python3 the tests that need them skip with the reason, except under CI=true, where they fail.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../..', import.meta.url));

/** The tool's path, or a skip reason (outside CI). Throws on any other failure. */
export function tool(name: 'helm' | 'kubernetes-validate' | 'prometheus-operator-crds'): { path: string } | { skip: string } {
  // The first helm build takes minutes (module download + compile on 2 cores).
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'tools.mjs'), name], { encoding: 'utf8', timeout: 20 * 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status === 0) return { path: r.stdout.trim() };
  if (r.status === 3 && process.env.CI !== 'true') {
    const reason = r.stderr.trim().split('\n').pop() ?? `${name} unavailable`;
    process.stderr.write(`SKIPPED ${name} tests: ${reason}\n`);
    return { skip: reason };
  }
  throw new Error(`scripts/tools.mjs ${name} failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
}

export function helm(helmPath: string, args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(helmPath, args, { encoding: 'utf8', cwd: root, env: { ...process.env, HELM_CACHE_HOME: '/tmp/weft-helm-cache', HELM_CONFIG_HOME: '/tmp/weft-helm-config', HELM_DATA_HOME: '/tmp/weft-helm-data' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

// Validates each object with kubernetes_validate.validate(obj, version, strict=True): the
// Kubernetes OpenAPI schema of its kind, unknown fields refused.
const DRIVER = `
import json, sys
import kubernetes_validate
objs = json.load(sys.stdin)
out = []
for version in sys.argv[1:]:
    for o in objs:
        try:
            kubernetes_validate.validate(o, version, strict=True)
            out.append({"version": version, "kind": o.get("kind"), "name": o.get("metadata", {}).get("name"), "ok": True})
        except Exception as e:
            msg = getattr(e, "message", None) or str(e)
            path = "/".join(str(p) for p in getattr(getattr(e, "caught", None), "absolute_path", []) or [])
            out.append({"version": version, "kind": o.get("kind"), "name": o.get("metadata", {}).get("name"), "ok": False, "error": (path + ": " if path else "") + str(msg)[:500]})
json.dump(out, sys.stdout)
`;

export interface Validation { version: string; kind: string; name: string; ok: boolean; error?: string }

export function validateKubernetes(pythonPath: string, objects: unknown[], versions: string[]): Validation[] {
  const r = spawnSync('python3', ['-c', DRIVER, ...versions], { input: JSON.stringify(objects), encoding: 'utf8', env: { ...process.env, PYTHONPATH: pythonPath }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`kubernetes-validate driver failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Validation[];
}

// Validates custom resources against their CRD's openAPIV3Schema (jsonschema, shipped with
// kubernetes-validate). The API server prunes fields a structural schema does not know; here an
// unknown field is an error instead (additionalProperties: false wherever fields are not
// preserved), so a typo cannot vanish silently.
const CRD_DRIVER = `
import json, sys, yaml, jsonschema
crds = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
objs = json.load(sys.stdin)
def strict(s):
    if isinstance(s, dict):
        s = {k: strict(v) for k, v in s.items() if not k.startswith("x-kubernetes-") or k == "x-kubernetes-preserve-unknown-fields"}
        if s.get("type") == "object" and "properties" in s and not s.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in s:
            s["additionalProperties"] = False
        if s.get("type") == "object" and "properties" in s:
            s["properties"].setdefault("apiVersion", {"type": "string"}); s["properties"].setdefault("kind", {"type": "string"})
        return s
    if isinstance(s, list):
        return [strict(x) for x in s]
    return s
out = []
for o in objs:
    group, _, version = o["apiVersion"].rpartition("/")
    match = [c for c in crds if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == o["kind"]]
    vers = [v for c in match for v in c["spec"]["versions"] if v["name"] == version and v.get("served")]
    if not vers:
        out.append({"kind": o["kind"], "name": o["metadata"]["name"], "ok": False, "error": "no served CRD version for " + o["apiVersion"] + " " + o["kind"]}); continue
    schema = strict(vers[0]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    errs = sorted(jsonschema.Draft7Validator(schema).iter_errors(o), key=lambda e: list(e.absolute_path))
    out.append({"kind": o["kind"], "name": o["metadata"]["name"], "ok": not errs, "error": "; ".join("/".join(map(str, e.absolute_path)) + ": " + e.message for e in errs[:5])})
json.dump(out, sys.stdout)
`;

export function validateCustomResources(pythonPath: string, crdFiles: string[], objects: unknown[]): Omit<Validation, 'version'>[] {
  const r = spawnSync('python3', ['-c', CRD_DRIVER, ...crdFiles], { input: JSON.stringify(objects), encoding: 'utf8', env: { ...process.env, PYTHONPATH: pythonPath }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`CRD schema driver failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Omit<Validation, 'version'>[];
}
