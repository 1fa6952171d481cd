import { html, LitElement, nothing, type TemplateResult } from 'lit';
import { api, errorText, setCsrfToken } from './api.js';
import './desk.js';
import './health.js';
import './services.js';

/*
 * The operator console's shell: sign-in, the three screens, sign-out. Lit components render
 * into the light DOM so one stylesheet (app.css, served under the CSP's style-src 'self')
 * styles them all; the page holds no inline script or style.
 */

interface SessionInfo {
  readonly serviceId: string;
  readonly csrfToken: string;
  readonly expiresAt: string;
  readonly categories: readonly string[];
}

type Screen = 'desk' | 'services' | 'health';
const SCREENS: readonly { id: Screen; label: string }[] = [
  { id: 'desk', label: 'Deletion desk' },
  { id: 'services', label: 'Services' },
  { id: 'health', label: 'Health' },
];

class PadlockConsole extends LitElement {
  static override properties = {
    session: { state: true },
    screen: { state: true },
    error: { state: true },
    checked: { state: true },
  };

  session: SessionInfo | undefined;
  screen: Screen = 'desk';
  error = '';
  checked = false;

  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    api<SessionInfo>('GET', '/console/api/session')
      .then((s) => this.#signedIn(s))
      .catch(() => undefined)
      .finally(() => (this.checked = true));
  }

  #signedIn(session: SessionInfo): void {
    setCsrfToken(session.csrfToken);
    this.session = session;
    this.error = '';
  }

  async #signIn(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const input = form.querySelector<HTMLInputElement>('#credential')!;
    try {
      this.#signedIn(await api<SessionInfo>('POST', '/console/api/session', { credential: input.value.trim() }));
    } catch (error) {
      this.error = errorText(error);
    } finally {
      input.value = '';
    }
  }

  async #signOut(): Promise<void> {
    try {
      await api('DELETE', '/console/api/session');
    } catch {
      // Signed out on the server or not, the page forgets the session.
    }
    setCsrfToken(undefined);
    this.session = undefined;
  }

  protected override render(): TemplateResult {
    if (this.session === undefined) {
      return html`<main class="sign-in">
        <h1>Padlock console</h1>
        <form @submit=${(e: SubmitEvent) => void this.#signIn(e)} aria-describedby="sign-in-help">
          <label for="credential">Operator credential</label>
          <input id="credential" name="credential" type="password" autocomplete="off" required />
          <button type="submit" id="sign-in">Sign in</button>
          <p id="sign-in-help" class="help">
            A credential of a service with the <code>admin</code> right. Service credentials cannot sign in.
          </p>
          ${this.error === '' ? nothing : html`<p role="alert" class="error" id="sign-in-error">${this.error}</p>`}
        </form>
      </main>`;
    }
    const session = this.session;
    return html`<header>
        <h1>Padlock console</h1>
        <nav aria-label="Screens">
          ${SCREENS.map(
            (s) =>
              html`<button
                type="button"
                id=${`nav-${s.id}`}
                aria-current=${this.screen === s.id ? 'page' : 'false'}
                @click=${() => (this.screen = s.id)}
              >
                ${s.label}
              </button>`,
          )}
        </nav>
        <p class="who">
          Signed in as <strong id="operator">${session.serviceId}</strong>, until
          ${new Date(session.expiresAt).toLocaleTimeString()}
          <button type="button" id="sign-out" @click=${() => void this.#signOut()}>Sign out</button>
        </p>
      </header>
      <main>
        ${
          this.screen === 'desk'
            ? html`<deletion-desk .categories=${session.categories}></deletion-desk>`
            : this.screen === 'services'
              ? html`<services-screen .categories=${session.categories}></services-screen>`
              : html`<health-screen></health-screen>`
        }
      </main>`;
  }
}

customElements.define('padlock-console', PadlockConsole);
