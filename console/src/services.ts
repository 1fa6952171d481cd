import { html, LitElement, nothing, type TemplateResult } from 'lit';
import { api, errorText } from './api.js';

/* Services: their rights and credentials; create (credential shown once), grant, revoke. */

interface ServiceJson {
  readonly serviceId: string;
  readonly permissions: {
    read: string[];
    create: boolean;
    rotate: boolean;
    shred: boolean;
    hold: boolean;
    admin: boolean;
  };
  readonly verified: boolean;
  readonly credentials: readonly { credentialId: string; createdAt: string; revokedAt: string | null }[];
}

const FLAGS = ['create', 'rotate', 'shred', 'hold', 'admin'] as const;

function rightsOf(p: ServiceJson['permissions']): string[] {
  return [...p.read.map((c) => `read:${c}`), ...FLAGS.filter((f) => p[f])];
}

class ServicesScreen extends LitElement {
  static override properties = {
    categories: { attribute: false },
    services: { state: true },
    error: { state: true },
    fresh: { state: true },
    copied: { state: true },
  };

  categories: readonly string[] = [];
  services: readonly ServiceJson[] = [];
  error = '';
  /** A credential just made: shown once, never kept anywhere else by the page. */
  fresh: { serviceId: string; credentialId: string; credential: string } | undefined;
  copied = false;

  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.#load();
  }

  async #load(): Promise<void> {
    try {
      this.services = (await api<{ services: ServiceJson[] }>('GET', '/v1/services')).services;
    } catch (error) {
      this.error = errorText(error);
    }
  }

  async #run(work: () => Promise<void>): Promise<void> {
    this.error = '';
    try {
      await work();
    } catch (error) {
      this.error = errorText(error);
    }
    await this.#load();
  }

  #create(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const serviceId = form.querySelector<HTMLInputElement>('#new-service-id')!.value.trim();
    const rights = [...form.querySelectorAll<HTMLInputElement>('input[name="right"]:checked')].map((i) => i.value);
    return this.#run(async () => {
      const created = await api<{ serviceId: string; credentialId: string; credential: string }>(
        'POST',
        '/v1/services',
        {
          serviceId,
          rights,
        },
      );
      this.fresh = created;
      this.copied = false;
      form.reset();
    });
  }

  #change(serviceId: string, action: 'grant' | 'revoke'): Promise<void> {
    const right = this.querySelector<HTMLSelectElement>(`#right-${serviceId}`)!.value;
    return this.#run(async () => {
      await api('POST', `/v1/services/${encodeURIComponent(serviceId)}/rights`, { action, rights: [right] });
    });
  }

  #addCredential(serviceId: string): Promise<void> {
    return this.#run(async () => {
      this.fresh = await api('POST', `/v1/services/${encodeURIComponent(serviceId)}/credentials`);
      this.copied = false;
    });
  }

  #revoke(serviceId: string, credentialId: string): Promise<void> {
    return this.#run(async () => {
      await api('DELETE', `/v1/services/${encodeURIComponent(serviceId)}/credentials/${credentialId}`);
    });
  }

  async #copy(): Promise<void> {
    if (this.fresh === undefined) return;
    try {
      await navigator.clipboard.writeText(this.fresh.credential);
      this.copied = true;
    } catch {
      // No clipboard permission: the field stays, selected, for a copy by hand.
      this.querySelector<HTMLInputElement>('#fresh-credential')?.select();
      this.error = 'Copy failed (no clipboard permission): the credential is selected, copy it by hand.';
    }
  }

  protected override render(): TemplateResult {
    const allRights = [...this.categories.map((c) => `read:${c}`), ...FLAGS];
    return html`<section aria-labelledby="services-title">
      <h2 id="services-title">Services</h2>
      ${this.error === '' ? nothing : html`<p role="alert" class="error" id="services-error">${this.error}</p>`}
      ${
        this.fresh === undefined
          ? nothing
          : html`<div class="fresh" role="status">
              <p>
                New credential for <strong>${this.fresh.serviceId}</strong> (id ${this.fresh.credentialId}). It is shown
                once and not stored: keep it now.
              </p>
              <label for="fresh-credential">Credential</label>
              <input id="fresh-credential" readonly .value=${this.fresh.credential} />
              <button type="button" id="copy-credential" @click=${() => void this.#copy()}>
                ${this.copied ? 'Copied' : 'Copy'}
              </button>
              <button type="button" @click=${() => (this.fresh = undefined)}>Done</button>
            </div>`
      }
      <table id="services">
        <caption>
          Registered services
        </caption>
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Rights</th>
            <th scope="col">Change rights</th>
            <th scope="col">Credentials</th>
          </tr>
        </thead>
        <tbody>
          ${this.services.map(
            (s) =>
              html`<tr data-service=${s.serviceId}>
                <th scope="row">
                  ${s.serviceId}${s.verified ? nothing : html` <span class="error">(fails its MAC)</span>`}
                </th>
                <td class="rights">${rightsOf(s.permissions).join(', ') || 'none'}</td>
                <td>
                  <label class="visually-hidden" for=${`right-${s.serviceId}`}>Right for ${s.serviceId}</label>
                  <select id=${`right-${s.serviceId}`}>
                    ${allRights.map((r) => html`<option value=${r}>${r}</option>`)}
                  </select>
                  <button
                    type="button"
                    id=${`grant-${s.serviceId}`}
                    @click=${() => void this.#change(s.serviceId, 'grant')}
                  >
                    Grant
                  </button>
                  <button
                    type="button"
                    id=${`revoke-${s.serviceId}`}
                    @click=${() => void this.#change(s.serviceId, 'revoke')}
                  >
                    Revoke
                  </button>
                </td>
                <td>
                  <ul>
                    ${s.credentials.map(
                      (c) =>
                        html`<li>
                          <code>${c.credentialId}</code>
                          ${
                            c.revokedAt === null
                              ? html`<button
                                  type="button"
                                  aria-label=${`Revoke credential ${c.credentialId} of ${s.serviceId}`}
                                  @click=${() => void this.#revoke(s.serviceId, c.credentialId)}
                                >
                                  Revoke
                                </button>`
                              : html`revoked ${c.revokedAt}`
                          }
                        </li>`,
                    )}
                  </ul>
                  <button type="button" @click=${() => void this.#addCredential(s.serviceId)}>Add credential</button>
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
      <form id="create-service" @submit=${(e: SubmitEvent) => void this.#create(e)}>
        <fieldset>
          <legend>Create a service</legend>
          <label for="new-service-id">Service id</label>
          <input id="new-service-id" required pattern="[a-z][a-z0-9\\-]{1,63}" autocomplete="off" />
          <div class="rights-choice">
            ${allRights.map(
              (r) =>
                html`<label
                  ><input type="checkbox" name="right" value=${r} id=${`new-right-${r.replace(':', '-')}`} />
                  ${r}</label
                >`,
            )}
          </div>
          <button type="submit" id="create">Create</button>
        </fieldset>
      </form>
    </section>`;
  }
}

customElements.define('services-screen', ServicesScreen);
