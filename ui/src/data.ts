// Data hooks built on useQuery: answers that follow the live head, and paged connections ("Load more").
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { gql } from './api';
import { useQuery, type QueryState } from './hooks';
import { useAt } from './router';
import { useSession } from './session';

/**
 * useLiveQuery is useQuery that runs again when the head revision moves while the console looks at the head
 * (no ?at=): live pages stay current. Previous data stays visible while the new answer loads.
 */
export function useLiveQuery<T>(query: string, variables: Record<string, unknown> = {}, opts: { skip?: boolean; keepPrevious?: boolean } = {}): QueryState<T> & { stale: boolean } {
  const at = useAt();
  const head = useSession().head;
  const q = useQuery<T>(query, variables, opts);
  const seen = useRef(head);
  useEffect(() => {
    if (seen.current === head) return;
    seen.current = head;
    if (at === null && !opts.skip) q.reload();
  }, [head, at]);
  // An answer to other variables (another question, another revision) is not shown as this one's: it is
  // dropped (or, with keepPrevious, flagged stale) until the new answer comes. A reload of the same question
  // (the head moved) keeps the old answer on screen meanwhile. useQuery aborts superseded requests, so new data
  // always answers the variables current when it arrives.
  const key = query + JSON.stringify(variables);
  const owner = useRef<{ data: T | null; key: string }>({ data: null, key });
  if (q.data !== owner.current.data) owner.current = { data: q.data, key };
  const stale = q.data !== null && owner.current.key !== key;
  return { ...q, data: stale && !opts.keepPrevious ? null : q.data, stale };
}

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface Conn<N> {
  nodes: N[];
  pageInfo: PageInfo;
  totalCount?: number;
  revision?: number;
}

export interface Paged<T, N> {
  /** The first page's whole answer (for fields beside the connection). */
  data: T | null;
  /** With keepPrevious: data answers the previous variables while the new answer loads. */
  stale: boolean;
  items: N[];
  totalCount: number | null;
  /** The revision of the first page; later pages are asked at it so the list stays consistent. */
  revision: number | null;
  hasMore: boolean;
  loading: boolean;
  loadingMore: boolean;
  error: Error | null;
  loadMore: () => void;
  reload: () => void;
}

/**
 * usePaged runs query (which must take $after: String and $at: Revision) and gathers its pages: select picks the
 * connection out of an answer. Later pages are asked with the first page's revision (pageRevision, default the
 * connection's own revision), so a list is one consistent revision even if the head moves meanwhile.
 */
export function usePaged<T, N>(
  query: string,
  variables: Record<string, unknown>,
  select: (data: T) => Conn<N> | null | undefined,
  opts: { skip?: boolean; keepPrevious?: boolean; pageRevision?: (data: T) => number | null | undefined } = {},
): Paged<T, N> {
  const first = useLiveQuery<T>(query, { ...variables, after: null }, opts);
  const [more, setMore] = useState<{ items: N[]; pageInfo: PageInfo | null }>({ items: [], pageInfo: null });
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<Error | null>(null);
  const ac = useRef<AbortController | null>(null);
  // A new first page (new variables, a reload) drops the pages gathered after the old one.
  useEffect(() => {
    ac.current?.abort();
    setMore({ items: [], pageInfo: null });
    setLoadingMore(false);
    setMoreError(null);
  }, [first.data]);
  useEffect(() => () => ac.current?.abort(), []);
  const conn = first.data ? select(first.data) : null;
  const revision = first.data ? (opts.pageRevision?.(first.data) ?? conn?.revision ?? null) : null;
  const pageInfo = more.pageInfo ?? conn?.pageInfo ?? null;
  const loadMore = useCallback(() => {
    if (!pageInfo?.hasNextPage || loadingMore) return;
    const c = new AbortController();
    ac.current = c;
    setLoadingMore(true);
    setMoreError(null);
    const vars: Record<string, unknown> = { ...variables, after: pageInfo.endCursor };
    if (revision !== null) vars.at = revision;
    gql<T>(query, vars, c.signal).then(
      (d) => {
        if (c.signal.aborted) return;
        const next = select(d);
        setMore((m) => ({ items: [...m.items, ...(next?.nodes ?? [])], pageInfo: next?.pageInfo ?? { hasNextPage: false, endCursor: null } }));
        setLoadingMore(false);
      },
      (e: Error) => {
        if (c.signal.aborted) return;
        setMoreError(e);
        setLoadingMore(false);
      },
    );
  }, [pageInfo, loadingMore, revision, query, JSON.stringify(variables)]);
  return {
    data: first.data,
    stale: first.stale,
    items: conn ? [...conn.nodes, ...more.items] : [],
    totalCount: conn?.totalCount ?? null,
    revision,
    hasMore: !!pageInfo?.hasNextPage,
    loading: first.loading,
    loadingMore,
    error: first.error ?? moreError,
    loadMore,
    reload: first.reload,
  };
}

/** useDebounced returns value once it has stayed the same for ms. */
export function useDebounced<V>(value: V, ms: number): V {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** useNow re-renders every interval ms (relative times such as "3 min ago" stay true). */
export function useNow(ms = 30_000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
