// Data hooks over the GraphQL client.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { gql } from './api';

export interface QueryState<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  /** reload runs the query again with the same variables. */
  reload: () => void;
}

/**
 * useQuery runs query whenever its variables change (compared as JSON), cancelling the previous request. skip
 * holds it back (for forms not yet submitted). The previous data stays visible while a new answer loads.
 */
export function useQuery<T>(query: string, variables: Record<string, unknown> = {}, opts: { skip?: boolean } = {}): QueryState<T> {
  const key = JSON.stringify(variables);
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({ data: null, error: null, loading: !opts.skip });
  const [tick, setTick] = useState(0);
  const live = useRef(true);
  useEffect(() => () => {
    live.current = false;
  }, []);
  useEffect(() => {
    if (opts.skip) {
      setState((s) => ({ ...s, loading: false }));
      return;
    }
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    gql<T>(query, JSON.parse(key), ac.signal).then(
      (data) => live.current && !ac.signal.aborted && setState({ data, error: null, loading: false }),
      (error: Error) => live.current && !ac.signal.aborted && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ac.abort();
  }, [query, key, opts.skip, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}
