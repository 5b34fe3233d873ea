// A small history-API router: every view has a real URL (deep links survive reloads and can be shared), and the
// time-travel revision rides along as ?at=REV on every link while it is set.
import { useEffect, useState } from 'preact/hooks';
import type { JSX } from 'preact';
import { h } from 'preact';

export interface Location {
  path: string;
  params: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: window.location.pathname, params: new URLSearchParams(window.location.search) };
}

window.addEventListener('popstate', () => listeners.forEach((fn) => fn()));

/** navigate goes to href (a path with an optional query) without reloading the page. */
export function navigate(href: string, opts: { replace?: boolean } = {}): void {
  if (href === window.location.pathname + window.location.search) return;
  if (opts.replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  listeners.forEach((fn) => fn());
}

/** useLocation re-renders the caller whenever the URL changes. */
export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const fn = () => setLoc(current());
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return loc;
}

/** match tests a path against a pattern such as /e/:id; parameters come back decoded. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const ps = pattern.split('/');
  const xs = path.split('/');
  if (ps.length !== xs.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < ps.length; i++) {
    if (ps[i].startsWith(':')) {
      try {
        out[ps[i].slice(1)] = decodeURIComponent(xs[i]);
      } catch {
        return null;
      }
    } else if (ps[i] !== xs[i]) return null;
  }
  return out;
}

/** The revision the console is looking at: ?at=REV, or null for the head (live). */
export function atOf(params: URLSearchParams): number | null {
  const v = params.get('at');
  if (!v || !/^\d+$/.test(v)) return null;
  return Number(v);
}

/** useAt returns the time-travel revision of the current URL (null: the head). */
export function useAt(): number | null {
  return atOf(useLocation().params);
}

/**
 * href builds a link to path with query parameters; the current ?at= is carried along unless params sets at
 * (null removes it). Values are encoded; path segments must be encoded by the caller (use seg).
 */
export function href(path: string, params: Record<string, string | number | null | undefined> = {}): string {
  const q = new URLSearchParams();
  const at = new URLSearchParams(window.location.search).get('at');
  if (at && !('at' in params)) q.set('at', at);
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** seg encodes one path segment (an opaque ID may hold any character). */
export const seg = (s: string): string => encodeURIComponent(s);

/** entityHref is the deep link of a node's page. */
export const entityHref = (id: string): string => href(`/e/${seg(id)}`);

type LinkProps = JSX.HTMLAttributes<HTMLAnchorElement> & { href: string };

/** Link is an <a> that navigates in place on a plain click and behaves as a normal link otherwise. */
export function Link(props: LinkProps): JSX.Element {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return h('a', { ...props, onClick } as JSX.HTMLAttributes<HTMLAnchorElement>);
}
