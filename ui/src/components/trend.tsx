// The findings trend over revisions: stacked bars by severity, with new (above) and resolved (below) marks,
// drawn as SVG elements by Preact (no innerHTML). A bar is a link to the risks at that revision.
import type { JSX } from 'preact';
import { SEVERITIES, severityLabel, when } from '../format';

export interface TrendPoint {
  revision: number;
  time: string;
  risky: number;
  bySeverity: { severity: string; count: number }[];
  new: number;
  resolved: number;
}

const W = 720;
const H = 170;
const PAD_L = 36;
const PAD_R = 8;
const TOP = 8;
const BARS_H = 112;
const DELTA_H = 28;

export function TrendChart({ points, current, onPick }: { points: TrendPoint[]; current: number | null; onPick?: (rev: number) => void }): JSX.Element {
  if (!points.length) return <p class="muted">No evaluated revision yet.</p>;
  const max = Math.max(1, ...points.map((p) => p.risky));
  const maxDelta = Math.max(1, ...points.map((p) => Math.max(p.new, p.resolved)));
  const step = (W - PAD_L - PAD_R) / points.length;
  const bw = Math.max(2, Math.min(28, step * 0.7));
  const y = (v: number) => TOP + BARS_H - (v / max) * BARS_H;
  const base = TOP + BARS_H;
  const deltaMid = base + 10 + DELTA_H / 2;
  const ticks = [0, Math.round(max / 2), max];
  return (
    <figure class="trend" data-testid="trend">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Risky findings over the last ${points.length} revisions`} preserveAspectRatio="none">
        {ticks.map((t) => (
          <g>
            <line x1={PAD_L} x2={W - PAD_R} y1={y(t)} y2={y(t)} class="grid" />
            <text x={PAD_L - 4} y={y(t) + 4} class="axis" text-anchor="end">
              {t}
            </text>
          </g>
        ))}
        <line x1={PAD_L} x2={W - PAD_R} y1={deltaMid} y2={deltaMid} class="grid" />
        {points.map((p, i) => {
          const x = PAD_L + i * step + (step - bw) / 2;
          let acc = 0;
          const label = `rev ${p.revision} · ${when(p.time)}\n${p.risky} risky: ${SEVERITIES.map((s) => `${p.bySeverity.find((b) => b.severity === s)?.count ?? 0} ${severityLabel(s).toLowerCase()}`).join(', ')}\n+${p.new} new, −${p.resolved} resolved`;
          const nh = (p.new / maxDelta) * (DELTA_H / 2);
          const rh = (p.resolved / maxDelta) * (DELTA_H / 2);
          return (
            <g
              class={`bar ${current === p.revision ? 'current' : ''} ${onPick ? 'pickable' : ''}`}
              data-testid="trend-bar"
              data-revision={p.revision}
              onClick={onPick ? () => onPick(p.revision) : undefined}
            >
              <title>{label}</title>
              <rect x={PAD_L + i * step} y={TOP} width={step} height={H - TOP} class="hit" />
              {[...SEVERITIES].reverse().map((s) => {
                const c = p.bySeverity.find((b) => b.severity === s)?.count ?? 0;
                if (!c) return null;
                const y0 = y(acc + c);
                const h = y(acc) - y0;
                acc += c;
                return <rect x={x} y={y0} width={bw} height={Math.max(h, 0.5)} class={`sev-fill-${s.toLowerCase()}`} />;
              })}
              {p.new ? <rect x={x} y={deltaMid - nh} width={bw} height={nh} class="delta-new" /> : null}
              {p.resolved ? <rect x={x} y={deltaMid} width={bw} height={rh} class="delta-resolved" /> : null}
            </g>
          );
        })}
        <text x={PAD_L - 4} y={deltaMid - 4} class="axis" text-anchor="end">new</text>
        <text x={PAD_L - 4} y={deltaMid + 10} class="axis" text-anchor="end">gone</text>
      </svg>
      <figcaption class="legend small">
        {SEVERITIES.map((s) => (
          <span>
            <span class={`swatch sev-bg-${s.toLowerCase()}`} /> {severityLabel(s)}
          </span>
        ))}
        <span>
          <span class="swatch delta-new-bg" /> new
        </span>
        <span>
          <span class="swatch delta-resolved-bg" /> resolved
        </span>
        <span class="muted">
          revisions {points[0].revision}…{points[points.length - 1].revision}
          {onPick ? ' · click a bar to look at that revision' : ''}
        </span>
      </figcaption>
    </figure>
  );
}
