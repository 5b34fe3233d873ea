// Unknown paths.
import type { JSX } from 'preact';
import { href, Link, useLocation } from '../router';

export function NotFound(): JSX.Element {
  const loc = useLocation();
  return (
    <div class="page narrow" data-testid="not-found">
      <h1>Page not found</h1>
      <p>
        There is no page at <code class="name">{loc.path}</code>. Try the <Link href={href('/')}>home page</Link>, or search with <kbd>/</kbd>.
      </p>
    </div>
  );
}
