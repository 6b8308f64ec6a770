// `weft manifest`: the Kubernetes install as plain YAML (for `kubectl apply -f -`), rendered from
// the same objects as the Helm chart in deploy/helm/weft, with the same values.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { UsageError } from '../../common/errors.js';
import type { Command } from '../command.js';
import { DEFAULT_NAMESPACE, renderManifest } from '../../deploy/render.js';
import { parseSet, type Json } from '../../deploy/values.js';

const list = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : []);

export const manifestCommand: Command = {
  name: 'manifest',
  summary: 'Print the Kubernetes install (controller, agent DaemonSet, CRDs, RBAC) as YAML',
  usage: ['weft manifest [--namespace NS] [-f values.yaml]… [--set key=value]… [--set-string key=value]… [--skip-crds]'],
  help: `Prints the same objects as \`helm template weft deploy/helm/weft --include-crds\`, plus the
Namespace, so \`weft manifest | kubectl apply -f -\` installs Weft without Helm.
Values are the chart's (deploy/helm/weft/values.yaml) and are checked against its schema.

Options:
  -n, --namespace NS        namespace of the controller and agents (default ${DEFAULT_NAMESPACE})
  -f, --values FILE         a values file (YAML), may repeat; applied in order
  --set key=value           a value, as helm --set (a.b=c, lists {x,y}, escape dots in keys with \\.)
  --set-string key=value    as --set, but the value is always a string
  --skip-crds               leave out the CustomResourceDefinitions`,
  options: {
    namespace: { type: 'string', short: 'n', default: DEFAULT_NAMESPACE },
    values: { type: 'string', short: 'f', multiple: true },
    set: { type: 'string', multiple: true },
    'set-string': { type: 'string', multiple: true },
    'skip-crds': { type: 'boolean', default: false },
  },
  async run(args, io) {
    const overrides: { [k: string]: Json }[] = [];
    // Helm's order: values files first, then --set, then --set-string.
    for (const file of list(args.values.values)) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read values file ${file}: ${(err as Error).message}`);
      }
      let doc: unknown;
      try {
        doc = parse(text);
      } catch (err) {
        throw new UsageError(`values file ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
      }
      if (doc === null || doc === undefined) continue;
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`values file ${file} must hold a map of values`);
      overrides.push(doc as { [k: string]: Json });
    }
    for (const s of list(args.values.set)) overrides.push(parseSet(s, true));
    for (const s of list(args.values['set-string'])) overrides.push(parseSet(s, false));
    io.out(renderManifest({ overrides, namespace: args.values.namespace as string, includeCrds: !args.values['skip-crds'] }));
    return 0;
  },
};
