// The request fields of who-can and can-i (verb, resource, namespace, name, non-resource URL) as controls that
// can be answered with clicks alone: selects of the common values, with typing still possible.
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useQuery } from '../hooks';
import { useAt } from '../router';

export const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'impersonate', 'bind', 'escalate', 'approve', 'sign', 'use', '*'];

/** A common resource: its plural name, subresource and API group. */
export interface ResourceOption {
  resource: string;
  subresource?: string;
  group: string;
  note?: string;
}

export const RESOURCES: ResourceOption[] = [
  { resource: 'pods', group: '' },
  { resource: 'pods', subresource: 'exec', group: '', note: 'a shell in a container' },
  { resource: 'pods', subresource: 'attach', group: '' },
  { resource: 'pods', subresource: 'portforward', group: '' },
  { resource: 'pods', subresource: 'log', group: '' },
  { resource: 'pods', subresource: 'ephemeralcontainers', group: '' },
  { resource: 'secrets', group: '' },
  { resource: 'configmaps', group: '' },
  { resource: 'serviceaccounts', group: '' },
  { resource: 'serviceaccounts', subresource: 'token', group: '', note: 'mint tokens' },
  { resource: 'services', group: '' },
  { resource: 'endpoints', group: '' },
  { resource: 'namespaces', group: '' },
  { resource: 'nodes', group: '' },
  { resource: 'nodes', subresource: 'proxy', group: '', note: 'the kubelet API' },
  { resource: 'persistentvolumes', group: '' },
  { resource: 'persistentvolumeclaims', group: '' },
  { resource: 'events', group: '' },
  { resource: 'users', group: '', note: 'impersonate' },
  { resource: 'groups', group: '', note: 'impersonate' },
  { resource: 'roles', group: 'rbac.authorization.k8s.io' },
  { resource: 'clusterroles', group: 'rbac.authorization.k8s.io' },
  { resource: 'rolebindings', group: 'rbac.authorization.k8s.io' },
  { resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' },
  { resource: 'deployments', group: 'apps' },
  { resource: 'daemonsets', group: 'apps' },
  { resource: 'statefulsets', group: 'apps' },
  { resource: 'replicasets', group: 'apps' },
  { resource: 'jobs', group: 'batch' },
  { resource: 'cronjobs', group: 'batch' },
  { resource: 'certificatesigningrequests', group: 'certificates.k8s.io' },
  { resource: 'certificatesigningrequests', subresource: 'approval', group: 'certificates.k8s.io' },
  { resource: 'signers', group: 'certificates.k8s.io', note: 'approve/sign' },
  { resource: 'mutatingwebhookconfigurations', group: 'admissionregistration.k8s.io' },
  { resource: 'validatingwebhookconfigurations', group: 'admissionregistration.k8s.io' },
  { resource: 'customresourcedefinitions', group: 'apiextensions.k8s.io' },
  { resource: 'tokenreviews', group: 'authentication.k8s.io' },
  { resource: 'podsecuritypolicies', group: 'policy' },
  { resource: '*', group: '*', note: 'every resource' },
];

export const NONRESOURCE_URLS = ['/metrics', '/healthz', '/livez', '/readyz', '/version', '/api', '/apis', '/logs', '/openapi/v2', '/debug/pprof'];

export const resourceKey = (r: { resource: string; subresource?: string | null }): string => (r.subresource ? `${r.resource}/${r.subresource}` : r.resource);

/** The request as the URL holds it (who-can and can-i share these names). */
export interface ActionState {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  ns: string;
  name: string;
  url: string;
}

export function actionFromParams(p: URLSearchParams, nameParam = 'name'): ActionState {
  return {
    verb: p.get('verb') ?? '',
    group: p.get('group') ?? '',
    resource: p.get('resource') ?? '',
    subresource: p.get('subresource') ?? '',
    ns: p.get('ns') ?? '',
    name: p.get(nameParam) ?? '',
    url: p.get('url') ?? '',
  };
}

/** actionInput is the GraphQL ActionInput of a request. */
export function actionInput(a: ActionState): Record<string, string | null> {
  if (a.url) return { verb: a.verb, nonResourceURL: a.url };
  return {
    verb: a.verb,
    apiGroup: a.group,
    resource: a.resource,
    subresource: a.subresource || null,
    namespace: a.ns || null,
    name: a.name || null,
  };
}

/** actionText says the request in words: "get secrets in kube-system". */
export function actionText(a: ActionState): string {
  if (a.url) return `${a.verb} ${a.url}`;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const g = a.group && a.group !== '*' ? `.${a.group}` : '';
  const named = a.name ? ` named ${a.name}` : '';
  return `${a.verb} ${res}${g}${named} ${a.ns ? `in ${a.ns}` : 'cluster-wide'}`;
}

const NAMESPACES = 'query Namespaces($at: Revision) { nodes(kind: NAMESPACE, at: $at, first: 1000) { nodes { name } } }';

function useNamespaces(): string[] {
  const at = useAt();
  const q = useQuery<{ nodes: { nodes: { name: string }[] } }>(NAMESPACES, { at });
  return q.data?.nodes.nodes.map((n) => n.name) ?? [];
}

/** ActionFields: the request controls; onChange gets the whole new state. */
export function ActionFields({ value: a, onChange, testidPrefix = '' }: { value: ActionState; onChange: (a: ActionState) => void; testidPrefix?: string }): JSX.Element {
  const namespaces = useNamespaces();
  const set = (patch: Partial<ActionState>) => onChange({ ...a, ...patch });
  const nonResource = a.url !== '';
  const key = resourceKey({ resource: a.resource, subresource: a.subresource });
  const listed = RESOURCES.find((r) => resourceKey(r) === key && r.group === a.group) ?? RESOURCES.find((r) => resourceKey(r) === key);
  const [typing, setTyping] = useState(false);
  const other = typing || (a.resource !== '' && !listed);
  const tid = (s: string) => `${testidPrefix}${s}`;
  return (
    <div class="action-fields">
      <div class="field">
        <label for={tid('verb')}>Verb</label>
        <select id={tid('verb')} data-testid={tid('verb')} value={a.verb} onChange={(e) => set({ verb: (e.target as HTMLSelectElement).value })}>
          <option value="" disabled>
            choose…
          </option>
          {(VERBS.includes(a.verb) || !a.verb ? VERBS : [a.verb, ...VERBS]).map((v) => (
            <option value={v}>{v}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for={tid('target')}>On</label>
        <select
          id={tid('target')}
          data-testid={tid('target')}
          value={nonResource ? 'url' : 'resource'}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            if (v === 'url') set({ url: '/metrics', resource: '', subresource: '', group: '', ns: '', name: '' });
            else set({ url: '' });
          }}
        >
          <option value="resource">a resource</option>
          <option value="url">a non-resource URL</option>
        </select>
      </div>
      {nonResource ? (
        <div class="field grow">
          <label for={tid('url')}>URL</label>
          <input
            id={tid('url')}
            data-testid={tid('url')}
            list={tid('url-list')}
            value={a.url}
            spellcheck={false}
            onInput={(e) => set({ url: (e.target as HTMLInputElement).value || '/' })}
          />
          <datalist id={tid('url-list')}>
            {NONRESOURCE_URLS.map((u) => (
              <option value={u} />
            ))}
          </datalist>
        </div>
      ) : (
        <>
          <div class="field">
            <label for={tid('resource')}>Resource</label>
            <select
              id={tid('resource')}
              data-testid={tid('resource')}
              value={other ? '__other' : listed ? `${resourceKey(listed)}|${listed.group}` : ''}
              onChange={(e) => {
                const v = (e.target as HTMLSelectElement).value;
                if (v === '__other') {
                  setTyping(true);
                  return;
                }
                setTyping(false);
                const [k, group] = v.split('|');
                const [resource, subresource = ''] = k.split('/');
                set({ resource, subresource, group });
              }}
            >
              <option value="" disabled>
                choose…
              </option>
              {RESOURCES.map((r) => (
                <option value={`${resourceKey(r)}|${r.group}`}>
                  {resourceKey(r)}
                  {r.group && r.group !== '*' ? ` (${r.group})` : ''}
                  {r.note ? ` — ${r.note}` : ''}
                </option>
              ))}
              <option value="__other">other (type it)…</option>
            </select>
          </div>
          {other ? (
            <>
              <div class="field">
                <label for={tid('resource-text')}>Resource (plural)</label>
                <input id={tid('resource-text')} data-testid={tid('resource-text')} value={a.resource} spellcheck={false} onInput={(e) => set({ resource: (e.target as HTMLInputElement).value })} />
              </div>
              <div class="field">
                <label for={tid('subresource')}>Subresource</label>
                <input id={tid('subresource')} data-testid={tid('subresource')} value={a.subresource} spellcheck={false} onInput={(e) => set({ subresource: (e.target as HTMLInputElement).value })} />
              </div>
            </>
          ) : null}
          <div class="field">
            <label for={tid('group')}>API group</label>
            <input
              id={tid('group')}
              data-testid={tid('group')}
              value={a.group}
              placeholder="core"
              spellcheck={false}
              size={14}
              onInput={(e) => set({ group: (e.target as HTMLInputElement).value })}
            />
          </div>
          <div class="field">
            <label for={tid('ns')}>Namespace</label>
            <select id={tid('ns')} data-testid={tid('ns')} value={a.ns} onChange={(e) => set({ ns: (e.target as HTMLSelectElement).value })}>
              <option value="">all namespaces / cluster-wide</option>
              {(a.ns && !namespaces.includes(a.ns) ? [a.ns, ...namespaces] : namespaces).map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for={tid('name')}>Object name</label>
            <input id={tid('name')} data-testid={tid('name')} value={a.name} placeholder="any" spellcheck={false} size={12} onInput={(e) => set({ name: (e.target as HTMLInputElement).value })} />
          </div>
        </>
      )}
    </div>
  );
}
