// PathGraph draws attack paths as a small left-to-right graph: one column per hop, one row per path, and a node
// that several paths share drawn once where they meet. It is a plain 2D canvas (a few dozen nodes need no
// WebGL) with the same content as a list inside the canvas element, which keyboards and screen readers reach.
// Every string comes from the cluster and is painted as canvas text or rendered as Preact text: never markup.
import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { QName } from '../components/ui';
import { kindColor, kindLabel, kindShort } from '../kinds';
import { canvasLabel, fitText } from './labels';
import './explorer.css';

export interface PathHop {
  /** Null for what the graph has no node for (a set of objects, the cluster-admin goal). */
  id: string | null;
  kind: string;
  name: string;
  namespace: string;
  /** A second line under the name (e.g. what the hop holds); defaults to the kind and namespace. */
  label?: string;
}

export interface AttackPath {
  hops: PathHop[];
  /** edgeLabels[i] names the step from hops[i] to hops[i + 1] (the technique). */
  edgeLabels?: string[];
}

export interface PathGraphProps {
  paths: AttackPath[];
  onOpen?: (id: string) => void;
  /** Canvas height in CSS pixels; by default it grows with the number of rows. */
  height?: number;
}

interface LNode {
  key: string;
  hop: PathHop;
  col: number;
  row: number;
}

interface LEdge {
  from: LNode;
  to: LNode;
  labels: string[];
}

interface Layout {
  nodes: LNode[];
  edges: LEdge[];
  cols: number;
  rows: number;
}

// A column is as wide as the labels under its nodes; the gap between two discs holds the step's technique.
const COL_W = 190;
const ROW_H = 74;
const PAD_Y = 20;
const R = 13;
// Below a disc: the name and a second line.
const TEXT_H = 34;

function hopKey(h: PathHop): string {
  return h.id ?? `${h.kind}\u0000${h.namespace}\u0000${h.name}`;
}

/**
 * layoutPaths places hops in layers. A node's column is the longest chain of hops leading to it, so every step
 * points right even where paths of different lengths merge; its row starts as the mean index of the paths
 * through it and is pushed down until it clears the node above it in its column.
 */
export function layoutPaths(paths: AttackPath[]): Layout {
  const nodes = new Map<string, LNode & { rowSum: number; rowCount: number }>();
  const edges = new Map<string, LEdge>();
  paths.forEach((p, pi) => {
    p.hops.forEach((h) => {
      const k = hopKey(h);
      const n = nodes.get(k) ?? { key: k, hop: h, col: 0, row: 0, rowSum: 0, rowCount: 0 };
      n.rowSum += pi;
      n.rowCount++;
      nodes.set(k, n);
    });
  });
  const steps: [LNode, LNode, string][] = [];
  for (const p of paths) {
    for (let i = 1; i < p.hops.length; i++) {
      const a = nodes.get(hopKey(p.hops[i - 1]))!;
      const b = nodes.get(hopKey(p.hops[i]))!;
      if (a !== b) steps.push([a, b, p.edgeLabels?.[i - 1] ?? '']);
    }
  }
  // Longest-path layering; a cycle (a path revisiting a node) would grow forever, so stop after |nodes| passes.
  for (let pass = 0, changed = true; changed && pass <= nodes.size; pass++) {
    changed = false;
    for (const [a, b] of steps) {
      if (b.col < a.col + 1) {
        b.col = a.col + 1;
        changed = true;
      }
    }
  }
  for (const [a, b, label] of steps) {
    const k = `${a.key}\u0001${b.key}`;
    const e = edges.get(k) ?? { from: a, to: b, labels: [] };
    if (label && !e.labels.includes(label)) e.labels.push(label);
    edges.set(k, e);
  }
  const byCol = new Map<number, (LNode & { rowSum: number; rowCount: number })[]>();
  for (const n of nodes.values()) byCol.set(n.col, [...(byCol.get(n.col) ?? []), n]);
  let rows = 1;
  let cols = 1;
  for (const [col, list] of byCol) {
    cols = Math.max(cols, col + 1);
    list.sort((a, b) => a.rowSum / a.rowCount - b.rowSum / b.rowCount);
    let next = 0;
    for (const n of list) {
      n.row = Math.max(n.rowSum / n.rowCount, next);
      next = n.row + 1;
      rows = Math.max(rows, Math.ceil(n.row + 1));
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()], cols, rows };
}

function position(n: LNode): { x: number; y: number } {
  return { x: COL_W / 2 + n.col * COL_W, y: PAD_Y + R + n.row * ROW_H };
}

function subtitle(h: PathHop): string {
  return h.label ?? (h.namespace ? `${kindLabel(h.kind)} · ${h.namespace}` : kindLabel(h.kind));
}

export function PathGraph(props: PathGraphProps): JSX.Element {
  const { paths, onOpen } = props;
  const layout = useMemo(() => layoutPaths(paths), [paths]);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<LNode | null>(null);
  const [scheme, setScheme] = useState(0);
  const wrap = useRef<HTMLDivElement>(null);
  const width = layout.cols * COL_W;
  const height = props.height ?? PAD_Y * 2 + 2 * R + TEXT_H + (layout.rows - 1) * ROW_H;

  // Repaint when the colour scheme flips: canvas colours are read from CSS at paint time.
  useEffect(() => {
    const q = window.matchMedia('(prefers-color-scheme: dark)');
    const fn = () => setScheme((s) => s + 1);
    q.addEventListener('change', fn);
    return () => q.removeEventListener('change', fn);
  }, []);

  useEffect(() => {
    const c = canvas.current;
    const ctx = c?.getContext('2d');
    if (!c || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    c.style.width = `${width}px`;
    c.style.height = `${height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw(ctx, layout, hover, getComputedStyle(wrap.current ?? c));
  }, [layout, hover, width, height, scheme]);

  const hit = (e: MouseEvent): LNode | null => {
    const rect = (e.currentTarget as HTMLCanvasElement).getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    return layout.nodes.find((n) => {
      const p = position(n);
      return Math.hypot(p.x - x, p.y - y) <= R + 3;
    }) ?? null;
  };

  return (
    <div class="pg" ref={wrap} data-testid="path-graph" data-nodes={layout.nodes.length} data-edges={layout.edges.length}>
      <canvas
        ref={canvas}
        role="img"
        aria-label={`${paths.length} attack path${paths.length === 1 ? '' : 's'} through ${layout.nodes.length} nodes`}
        title={hover ? canvasLabel(`${kindLabel(hover.hop.kind)} ${hover.hop.namespace ? `${hover.hop.namespace}/` : ''}${hover.hop.name}`, 400) : undefined}
        onMouseMove={(e) => {
          const n = hit(e);
          if (n !== hover) setHover(n);
          (e.currentTarget as HTMLCanvasElement).style.cursor = n?.hop.id && onOpen ? 'pointer' : '';
        }}
        onMouseLeave={() => setHover(null)}
        onClick={(e) => {
          const n = hit(e);
          if (n?.hop.id && onOpen) onOpen(n.hop.id);
        }}
      >
        <ol>
          {paths.map((p, pi) => (
            <li key={pi}>
              <ol>
                {p.hops.map((h, i) => (
                  <li key={i}>
                    {i > 0 ? <span class="muted">{p.edgeLabels?.[i - 1] ? `${p.edgeLabels[i - 1]} → ` : '→ '}</span> : null}
                    {h.id && onOpen ? (
                      <button type="button" class="link-button" onClick={() => onOpen(h.id!)}>
                        {kindLabel(h.kind)} <QName namespace={h.namespace} name={h.name} clip={false} />
                      </button>
                    ) : (
                      <span>
                        {kindLabel(h.kind)} <QName namespace={h.namespace} name={h.name} clip={false} />
                      </span>
                    )}
                  </li>
                ))}
              </ol>
            </li>
          ))}
        </ol>
      </canvas>
    </div>
  );
}

/** draw paints the layout; css is the wrapper's computed style (its colour, background and font). */
function draw(ctx: CanvasRenderingContext2D, layout: Layout, hover: LNode | null, css: CSSStyleDeclaration): void {
  const fg = css.color || '#222';
  const font = css.fontFamily || 'system-ui, sans-serif';
  ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);

  // Edges: a curve from node to node with an arrowhead, the technique on a plate at its middle.
  ctx.lineWidth = 1.5;
  for (const e of layout.edges) {
    const a = position(e.from);
    const b = position(e.to);
    const x1 = a.x + R;
    const x2 = b.x - R - 2;
    const mx = (x1 + x2) / 2;
    const lit = hover === e.from || hover === e.to;
    ctx.strokeStyle = lit ? fg : 'rgba(128,128,128,0.7)';
    ctx.fillStyle = ctx.strokeStyle;
    ctx.beginPath();
    ctx.moveTo(x1, a.y);
    ctx.bezierCurveTo(mx, a.y, mx, b.y, x2, b.y);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x2, b.y);
    ctx.lineTo(x2 - 7, b.y - 4);
    ctx.lineTo(x2 - 7, b.y + 4);
    ctx.closePath();
    ctx.fill();
    if (e.labels.length) {
      ctx.font = `11px ${font}`;
      // An edge that skips columns carries its label in its first gap, beside its source: edges converging on
      // one target from several rows would otherwise stack their labels at the same middle.
      const long = e.to.col - e.from.col > 1;
      const lx = long ? a.x + COL_W / 2 : mx;
      const text = fitText(ctx, canvasLabel(e.labels.join(', '), 80), (long ? COL_W - 2 * R : x2 - x1) - 16);
      const w = ctx.measureText(text).width;
      const my = long ? a.y : (a.y + b.y) / 2;
      ctx.fillStyle = css.backgroundColor;
      ctx.fillRect(lx - w / 2 - 3, my - 8, w + 6, 15);
      ctx.fillStyle = fg;
      ctx.textAlign = 'center';
      ctx.fillText(text, lx, my + 3);
      ctx.textAlign = 'start';
    }
  }

  // Nodes: a disc in the kind's colour with its short name, the name under it and a second line below that.
  for (const n of layout.nodes) {
    const { x, y } = position(n);
    ctx.beginPath();
    ctx.arc(x, y, R, 0, 2 * Math.PI);
    ctx.fillStyle = kindColor(n.hop.kind);
    ctx.fill();
    if (n === hover) {
      ctx.lineWidth = 3;
      ctx.strokeStyle = fg;
      ctx.stroke();
      ctx.lineWidth = 1.5;
    }
    ctx.fillStyle = '#fff';
    ctx.font = `bold 9px ${font}`;
    ctx.textAlign = 'center';
    ctx.fillText(kindShort(n.hop.kind), x, y + 3);
    ctx.fillStyle = fg;
    ctx.font = `600 12px ${font}`;
    ctx.fillText(fitText(ctx, canvasLabel(n.hop.name, 120), COL_W - 16), x, y + R + 14);
    ctx.font = `11px ${font}`;
    ctx.globalAlpha = 0.7;
    ctx.fillText(fitText(ctx, canvasLabel(subtitle(n.hop), 120), COL_W - 16), x, y + R + 28);
    ctx.globalAlpha = 1;
    ctx.textAlign = 'start';
  }
}
