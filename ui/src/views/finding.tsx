// One finding (/findings/:fingerprint): its rule (description, remediation, references), subject and
// object, the evidence with its grant paths, and the escalation paths of its subject drawn as a graph.
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { href, Link, useAt } from '../router';
import { useLiveQuery } from '../data';
import { useSession } from '../session';
import { GRANT, HOP, type AttackHop, type AttackPathT, type GrantPath, type NodeRef, type ObjectRef } from '../fragments';
import { GrantPathView } from '../components/grant';
import { AttackPaths, HopList, PathsGraph } from '../components/paths';
import { AtNote, DL, Empty, ErrorBox, Loading, Name, RefLink, Section, SeverityBadge } from '../components/ui';
import { subjectKindOf } from '../format';

const FINDING = `query FindingPage($fp: ID!, $at: Revision) {
  server { revision }
  finding(fingerprint: $fp, at: $at) {
      fingerprint pack severity status title message namespace reason location revision
      rule {
        id pack title severity description remediation target match check source requires
        references { cis mitre urls }
      }
      subjectRef { kind namespace name } subject { id kind name namespace }
      objectRef { kind namespace name } object { id kind name namespace }
      suppression { id owner reason expires expired }
      evidence { text namespace expected reason location grant { ...Grant } objectRef { kind namespace name } object { id kind name namespace } }
      path { ...Hop }
  }
}
${GRANT}
${HOP}`;

interface Finding {
  fingerprint: string;
  pack: string;
  severity: string;
  status: string;
  title: string;
  message: string;
  namespace: string | null;
  reason: string | null;
  location: string | null;
  revision: number;
  rule: {
    id: string;
    pack: string;
    title: string;
    severity: string;
    description: string;
    remediation: string;
    target: string;
    match: string | null;
    check: string | null;
    source: string;
    requires: string[];
    references: { cis: string[]; mitre: string[]; urls: string[] };
  };
  subjectRef: ObjectRef | null;
  subject: NodeRef | null;
  objectRef: ObjectRef | null;
  object: NodeRef | null;
  suppression: { id: string; owner: string; reason: string; expires: string; expired: boolean } | null;
  evidence: { text: string; namespace: string | null; expected: boolean; reason: string | null; location: string | null; grant: GrantPath | null; objectRef: ObjectRef | null; object: NodeRef | null }[];
  path: AttackHop[] | null;
}

type Page = { server: { revision: number }; finding: Finding | null };

/** useFinding reads one finding by its fingerprint, at the time-travel revision or the newest evaluated one. */
function useFinding(fingerprint: string, at: number | null): { finding: Finding | null; revision: number | null; error: Error | null; done: boolean; retry: () => void } {
  const head = useSession().head;
  const [st, setSt] = useState<{ finding: Finding | null; revision: number | null; error: Error | null; done: boolean }>({ finding: null, revision: null, error: null, done: false });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setSt((s) => ({ ...s, error: null, done: s.finding ? s.done : false }));
    gql<Page>(FINDING, { fp: fingerprint, at }, ac.signal).then(
      (d) => !ac.signal.aborted && setSt({ finding: d.finding, revision: d.finding?.revision ?? at ?? d.server.revision, error: null, done: true }),
      (e: Error) => !ac.signal.aborted && setSt((s) => ({ ...s, error: e, done: true })),
    );
    return () => ac.abort();
  }, [fingerprint, at, at === null ? head : 0, tick]);
  return { ...st, retry: () => setTick((t) => t + 1) };
}

export function FindingView({ params }: { params: Record<string, string> }): JSX.Element {
  const at = useAt();
  const r = useFinding(params.fingerprint, at);
  if (r.error && !r.finding) return <div class="page"><ErrorBox error={r.error} retry={r.retry} /></div>;
  if (!r.done && !r.finding) return <div class="page"><Loading label="Loading the finding…" /></div>;
  const f = r.finding;
  if (!f) {
    return (
      <div class="page" data-testid="finding-missing">
        <h1>Finding not found</h1>
        <Empty>
          No finding {params.fingerprint} at revision {r.revision}: it may have been resolved, or not exist yet. <Link href={href('/risks')}>Back to the risks</Link>
        </Empty>
      </div>
    );
  }
  return (
    <div class="page finding" data-testid="finding">
      <header class="page-head">
        <h1 data-testid="finding-title">
          <SeverityBadge severity={f.severity} /> {f.title}
        </h1>
        <AtNote revision={f.revision} />
        <span class={`status status-${f.status.toLowerCase()}`}>{f.status.toLowerCase()}</span>
      </header>
      <p class="lead"><Name text={f.message} clip={false} /></p>
      <div class="cols">
        <Section title="What" testid="finding-what">
          <DL
            rows={[
              ['Subject', f.subjectRef ? <RefLink oref={f.subjectRef} node={f.subject} /> : null],
              ['Object', f.objectRef ? <RefLink oref={f.objectRef} node={f.object} /> : null],
              ['Where', f.namespace ? <Name text={f.namespace} /> : 'cluster-wide'],
              ['Pack', <Link href={href('/risks', { pack: f.pack })}>{f.pack}</Link>],
              ['Status', f.status.toLowerCase()],
              ['Why expected', f.reason ? <Name text={f.reason} clip={false} /> : null],
              ['Suppression', f.suppression ? (
                <span>
                  <code>{f.suppression.id}</code> by <Name text={f.suppression.owner} /> until {f.suppression.expires}
                  {f.suppression.expired ? ' (expired)' : ''}: <Name text={f.suppression.reason} clip={false} />
                </span>
              ) : null],
              ['Location', f.location ? <code>{f.location}</code> : null],
              ['Fingerprint', <code>{f.fingerprint}</code>],
            ]}
          />
        </Section>
        <Section title="Rule" testid="finding-rule">
          <h3>{f.rule.title} <span class="muted small">{f.rule.id}</span></h3>
          <Prose text={f.rule.description} />
          {f.rule.remediation ? (
            <>
              <h3>Remediation</h3>
              <div data-testid="remediation"><Prose text={f.rule.remediation} /></div>
            </>
          ) : null}
          <DL
            rows={[
              ['CIS', f.rule.references.cis.length ? f.rule.references.cis.join(', ') : null],
              ['MITRE ATT&CK', f.rule.references.mitre.length ? f.rule.references.mitre.join(', ') : null],
              ['References', f.rule.references.urls.length ? (
                <ul class="plain-list">
                  {f.rule.references.urls.map((u) => (
                    <li>
                      {/^https?:\/\//.test(u) ? <a href={u} target="_blank" rel="noopener noreferrer">{u}</a> : <span>{u}</span>}
                    </li>
                  ))}
                </ul>
              ) : null],
              ['Looks at', f.rule.target],
              ['Match', f.rule.match ? <pre class="code">{f.rule.match}</pre> : f.rule.check ? <code>Go check {f.rule.check}</code> : null],
              ['Source', <code>{f.rule.source}</code>],
            ]}
          />
        </Section>
      </div>
      <Section title={<>Evidence<span class="count-pill">{f.evidence.length}</span></>} testid="evidence">
        {!f.evidence.length ? <p class="muted">No evidence recorded.</p> : (
          <ul class="paths">
            {f.evidence.map((e) => (
              <li data-testid="evidence-item">
                <div><Name text={e.text} clip={false} /></div>
                {e.grant ? <GrantPathView g={e.grant} namespace={e.namespace} showSubject /> : e.objectRef ? <RefLink oref={e.objectRef} node={e.object} /> : null}
                {e.expected ? <div class="small muted">platform default{e.reason ? `: ${e.reason}` : ''}</div> : null}
                {e.location ? <div class="small muted"><code>{e.location}</code></div> : null}
              </li>
            ))}
          </ul>
        )}
      </Section>
      {f.path?.length ? (
        <Section title="Shortest path to cluster-admin" testid="finding-path">
          <PathsGraph paths={[{ hops: f.path }]} height={200} />
          <HopList hops={f.path} />
        </Section>
      ) : null}
      {f.subjectRef && subjectKindOf(f.subjectRef.kind) ? <SubjectPaths s={f.subjectRef} at={at ?? f.revision} /> : null}
    </div>
  );
}

/** Prose renders a rule's text: paragraphs split on blank lines, single line breaks as spaces. */
function Prose({ text }: { text: string }): JSX.Element {
  return (
    <div class="prose">
      {text.split(/\n\s*\n/).map((p) => (
        <p>{p.replace(/\s*\n\s*/g, ' ')}</p>
      ))}
    </div>
  );
}

const ATTACK = `query FindingAttack($subject: SubjectInput!, $at: Revision) { attackPaths(subject: $subject, k: 5, at: $at) { text hops { ...Hop } } } ${HOP} ${GRANT}`;

function SubjectPaths({ s, at }: { s: ObjectRef; at: number }): JSX.Element {
  const q = useLiveQuery<{ attackPaths: AttackPathT[] }>(ATTACK, { subject: { kind: subjectKindOf(s.kind), name: s.name, namespace: s.namespace || null }, at });
  return (
    <Section title="Escalation paths of the subject" testid="subject-attack-paths">
      {q.error && !q.data ? <ErrorBox error={q.error} retry={q.reload} /> : !q.data ? <Loading label="Searching the attack graph…" /> : !q.data.attackPaths.length ? (
        <Empty>The subject has no escalation path to cluster-admin at revision {at}.</Empty>
      ) : (
        <AttackPaths paths={q.data.attackPaths} />
      )}
    </Section>
  );
}
