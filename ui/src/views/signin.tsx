// Sign-in: a bearer token, checked against the server before it is kept (sessionStorage, never a URL).
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { setToken } from '../api';
import { errorText } from '../format';

export function SignIn({ onDone }: { onDone: () => void }): JSX.Element {
  const [token, setTok] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError('Paste the token kiem printed at start, or one from its token file.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // The token is tried as-is before it is stored, so a refused one never replaces a good session.
      const res = await fetch('/graphql', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: `Bearer ${t}` },
        body: JSON.stringify({ query: '{ server { viewer { user role } cluster revision } }' }),
        credentials: 'omit',
        cache: 'no-store',
      });
      if (res.status === 401 || res.status === 403) {
        setError('The server refused this token. Check that it is complete and still valid.');
        setBusy(false);
        return;
      }
      const body = (await res.json().catch(() => null)) as { data?: unknown; errors?: { message: string }[] } | null;
      if (!res.ok || !body?.data) {
        setError(body?.errors?.map((x) => x.message).join('; ') || `The server answered HTTP ${res.status}.`);
        setBusy(false);
        return;
      }
      setTok('');
      setToken(t);
      onDone();
    } catch (err) {
      setError(`kiem cannot be reached: ${errorText(err)}`);
      setBusy(false);
    }
  };

  return (
    <div class="gate">
      <form class="signin card" onSubmit={submit} data-testid="signin" autocomplete="off">
        <h1>
          <svg viewBox="0 0 16 16" width="22" height="22" aria-hidden="true">
            <path d="M8 1 2 4v4c0 3.5 2.6 6.4 6 7 3.4-.6 6-3.5 6-7V4z" fill="currentColor" />
          </svg>{' '}
          Sign in to kiem
        </h1>
        <p class="muted">
          kiem answers who can do what in your Kubernetes cluster. Sign in with a bearer token: the one <code>kiem serve</code>{' '}
          printed at start, a line of its <code>--token-file</code>, or your Kubernetes token with <code>--auth=kubernetes</code>.
        </p>
        <label for="signin-token">Token</label>
        <input
          id="signin-token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setTok((e.target as HTMLInputElement).value)}
          data-testid="signin-token"
          autoFocus
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'signin-error' : undefined}
        />
        {error ? (
          <p class="form-error" id="signin-error" role="alert" data-testid="signin-error">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy} data-testid="signin-submit">
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p class="muted small">The token stays in this tab only (session storage) and is sent in the Authorization header, never in a URL.</p>
      </form>
    </div>
  );
}
