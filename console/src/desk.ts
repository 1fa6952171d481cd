import { html, LitElement, nothing, type TemplateResult } from 'lit';
import { api, errorText } from './api.js';
import { verifyReceipt, type VerifiedReceipt } from './receipts.js';

/*
 * The deletion desk: one user's keychain metadata, and the actions on it. Every action needs
 * the user id typed again (the typed confirmation); the server checks rights, holds and CSRF.
 */

interface Version {
  readonly version: number;
  readonly state: string;
  readonly createdAt: string;
  readonly shreddedAt: string | null;
}
interface Category {
  readonly category: string;
  readonly state: string;
  readonly pendingDeletionAt?: string;
  readonly heldBy: readonly string[];
  readonly versions: readonly Version[];
}
interface Schedule {
  readonly scheduleId: string;
  readonly category: string | null;
  readonly state: string;
  readonly executeAt: string;
  readonly requestedBy: string;
}
interface Hold {
  readonly holdId: string;
  readonly category: string | null;
  readonly reason: string;
  readonly placedBy: string;
  readonly placedAt: string;
  readonly state: string;
}
interface Metadata {
  readonly userId: string;
  readonly categories: readonly Category[];
  readonly schedules: readonly Schedule[];
  readonly holds: readonly Hold[];
  readonly receipts: readonly { id: string; issuedAt: string }[];
}
interface ShredAnswer {
  readonly receipt: { id: string; jws: string };
}

type Action = 'shred-category' | 'shred-keychain' | 'schedule' | 'cancel-schedule' | 'place-hold' | 'release-hold';
const ACTIONS: readonly { id: Action; label: string }[] = [
  { id: 'place-hold', label: 'Place a legal hold' },
  { id: 'release-hold', label: 'Release a legal hold' },
  { id: 'schedule', label: 'Schedule a shred' },
  { id: 'cancel-schedule', label: 'Cancel a scheduled shred' },
  { id: 'shred-category', label: 'Shred one category now' },
  { id: 'shred-keychain', label: 'Shred the whole keychain now' },
];

const enc = encodeURIComponent;

/** What a verified receipt says was destroyed, in words. */
function describeClaims(claims: Record<string, unknown>): string {
  const categories = (claims['categories'] ?? []) as { category: string; versions: { version: number }[] }[];
  const what = categories.map((c) => `${c.category} ${c.versions.map((v) => `v${v.version}`).join(', ')}`).join('; ');
  const at = typeof claims['shreddedAt'] === 'number' ? new Date(claims['shreddedAt']).toISOString() : '?';
  return `Shredded ${what} at ${at}, requested by ${String(claims['requestedBy'])}.`;
}

class DeletionDesk extends LitElement {
  static override properties = {
    categories: { attribute: false },
    metadata: { state: true },
    error: { state: true },
    action: { state: true },
    confirmation: { state: true },
    outcome: { state: true },
    receipt: { state: true },
    verifications: { state: true },
  };

  categories: readonly string[] = [];
  metadata: Metadata | undefined;
  error = '';
  action: Action = 'place-hold';
  confirmation = '';
  outcome = '';
  receipt: (VerifiedReceipt & { id: string }) | undefined;
  verifications: Record<string, VerifiedReceipt> = {};

  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  async #lookUp(userId: string): Promise<void> {
    this.error = '';
    try {
      this.metadata = await api<Metadata>('GET', `/v1/keychains/${enc(userId)}`);
    } catch (error) {
      this.metadata = undefined;
      this.error = errorText(error);
    }
  }

  async #verify(id: string, userId: string): Promise<void> {
    const receipt = await api<{ jws: string }>('GET', `/v1/receipts/${enc(id)}`);
    this.verifications = { ...this.verifications, [id]: await verifyReceipt(receipt.jws, userId) };
  }

  #field(name: string): string {
    return this.querySelector<HTMLInputElement | HTMLSelectElement>(`#${name}`)?.value ?? '';
  }

  async #act(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const userId = this.metadata?.userId;
    if (userId === undefined || this.confirmation !== userId) return;
    const base = `/v1/keychains/${enc(userId)}`;
    const category = this.#field('action-category');
    this.outcome = '';
    this.receipt = undefined;
    try {
      let shred: ShredAnswer | undefined;
      switch (this.action) {
        case 'place-hold': {
          const hold = await api<Hold>('POST', `${base}/holds`, {
            reason: this.#field('action-reason'),
            ...(category === '' ? {} : { category }),
          });
          this.outcome = `Hold ${hold.holdId} placed.`;
          break;
        }
        case 'release-hold':
          await api('DELETE', `${base}/holds/${enc(this.#field('action-hold'))}`);
          this.outcome = 'Hold released.';
          break;
        case 'schedule': {
          const schedule = await api<Schedule>('POST', `${base}/schedules`, {
            graceSeconds: Number(this.#field('action-grace')),
            serveDuringGrace: false,
            ...(category === '' ? {} : { category }),
          });
          this.outcome = `Shred ${schedule.scheduleId} scheduled for ${schedule.executeAt}.`;
          break;
        }
        case 'cancel-schedule':
          await api('DELETE', `${base}/schedules/${enc(this.#field('action-schedule'))}`);
          this.outcome = 'Scheduled shred cancelled.';
          break;
        case 'shred-category':
          shred = await api<ShredAnswer>('DELETE', `${base}/categories/${enc(category)}`);
          break;
        case 'shred-keychain':
          shred = await api<ShredAnswer>('DELETE', base);
          break;
      }
      if (shred !== undefined) {
        this.outcome = `Shredded. Receipt ${shred.receipt.id}.`;
        this.receipt = { id: shred.receipt.id, ...(await verifyReceipt(shred.receipt.jws, userId)) };
      }
    } catch (error) {
      this.outcome = `Refused: ${errorText(error)}`;
    }
    this.confirmation = '';
    await this.#lookUp(userId);
  }

  protected override render(): TemplateResult {
    return html`<section aria-labelledby="desk-title">
      <h2 id="desk-title">Deletion desk</h2>
      <form
        class="row"
        @submit=${(e: SubmitEvent) => {
          e.preventDefault();
          void this.#lookUp(this.#field('user-id').trim());
        }}
      >
        <label for="user-id">User id</label>
        <input id="user-id" name="user-id" required maxlength="128" autocomplete="off" />
        <button type="submit" id="look-up">Look up</button>
      </form>
      ${this.error === '' ? nothing : html`<p role="alert" class="error" id="desk-error">${this.error}</p>`}
      ${this.metadata === undefined ? nothing : this.#renderMetadata(this.metadata)}
    </section>`;
  }

  #renderMetadata(m: Metadata): TemplateResult {
    const inForce = m.holds.filter((h) => h.state === 'in_force');
    const pending = m.schedules.filter((s) => s.state === 'pending');
    return html`<h3>User <span id="desk-user">${m.userId}</span></h3>
      <table id="categories">
        <caption>
          Categories
        </caption>
        <thead>
          <tr>
            <th scope="col">Category</th>
            <th scope="col">State</th>
            <th scope="col">Versions</th>
            <th scope="col">Pending deletion at</th>
            <th scope="col">Held by</th>
          </tr>
        </thead>
        <tbody>
          ${m.categories.map(
            (c) =>
              html`<tr data-category=${c.category}>
                <th scope="row">${c.category}</th>
                <td class=${`state state-${c.state}`}>${c.state}</td>
                <td>${c.versions.map((v) => `v${v.version} ${v.state}`).join(', ')}</td>
                <td>${c.pendingDeletionAt ?? '-'}</td>
                <td>${c.heldBy.length === 0 ? '-' : c.heldBy.join(', ')}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <table id="holds">
        <caption>
          Legal holds
        </caption>
        <thead>
          <tr>
            <th scope="col">Hold</th>
            <th scope="col">Scope</th>
            <th scope="col">Reason</th>
            <th scope="col">Placed</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          ${m.holds.map(
            (h) =>
              html`<tr>
                <td><code>${h.holdId}</code></td>
                <td>${h.category ?? 'whole keychain'}</td>
                <td>${h.reason}</td>
                <td>${h.placedAt} by ${h.placedBy}</td>
                <td>${h.state}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <table id="schedules">
        <caption>
          Scheduled shreds
        </caption>
        <thead>
          <tr>
            <th scope="col">Schedule</th>
            <th scope="col">Scope</th>
            <th scope="col">Executes at</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          ${m.schedules.map(
            (s) =>
              html`<tr>
                <td><code>${s.scheduleId}</code></td>
                <td>${s.category ?? 'whole keychain'}</td>
                <td>${s.executeAt}</td>
                <td>${s.state}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <table id="receipts">
        <caption>
          Deletion receipts
        </caption>
        <thead>
          <tr>
            <th scope="col">Receipt</th>
            <th scope="col">Issued</th>
            <th scope="col">Signature</th>
          </tr>
        </thead>
        <tbody>
          ${m.receipts.map((r) => {
            const v = this.verifications[r.id];
            return html`<tr>
              <td><code>${r.id}</code></td>
              <td>${r.issuedAt}</td>
              <td>
                ${
                  v === undefined
                    ? html`<button type="button" @click=${() => void this.#verify(r.id, m.userId)}>Verify</button>`
                    : v.ok
                      ? html`<span class="ok">verified</span>`
                      : html`<span class="error">does not verify: ${v.problem}</span>`
                }
              </td>
            </tr>`;
          })}
        </tbody>
      </table>
      ${this.#renderAction(m, inForce, pending)}`;
  }

  #renderAction(m: Metadata, inForce: readonly Hold[], pending: readonly Schedule[]): TemplateResult {
    const a = this.action;
    const needsCategory = a === 'shred-category' || a === 'place-hold' || a === 'schedule';
    return html`<form id="action-form" class="action" @submit=${(e: SubmitEvent) => void this.#act(e)}>
      <fieldset>
        <legend>Act on ${m.userId}</legend>
        <label for="action">Action</label>
        <select id="action" @change=${(e: Event) => (this.action = (e.target as HTMLSelectElement).value as Action)}>
          ${ACTIONS.map((x) => html`<option value=${x.id} ?selected=${x.id === a}>${x.label}</option>`)}
        </select>
        ${
          needsCategory
            ? html`<label for="action-category">Category</label>
                <select id="action-category">
                  ${a === 'shred-category' ? nothing : html`<option value="">whole keychain</option>`}
                  ${this.categories.map((c) => html`<option value=${c}>${c}</option>`)}
                </select>`
            : nothing
        }
        ${
          a === 'place-hold'
            ? html`<label for="action-reason">Reason</label
                ><input id="action-reason" required maxlength="1000" autocomplete="off" />`
            : nothing
        }
        ${
          a === 'schedule'
            ? html`<label for="action-grace">Grace period (seconds)</label
                ><input id="action-grace" type="number" min="0" value="2592000" required />`
            : nothing
        }
        ${
          a === 'release-hold'
            ? html`<label for="action-hold">Hold</label>
                <select id="action-hold">
                  ${inForce.map((h) => html`<option value=${h.holdId}>${h.holdId} (${h.category ?? 'keychain'})</option>`)}
                </select>`
            : nothing
        }
        ${
          a === 'cancel-schedule'
            ? html`<label for="action-schedule">Scheduled shred</label>
                <select id="action-schedule">
                  ${pending.map(
                    (s) => html`<option value=${s.scheduleId}>${s.scheduleId} (${s.category ?? 'keychain'})</option>`,
                  )}
                </select>`
            : nothing
        }
        <label for="confirmation">Type the user id <strong>${m.userId}</strong> to confirm</label>
        <input
          id="confirmation"
          autocomplete="off"
          .value=${this.confirmation}
          @input=${(e: Event) => (this.confirmation = (e.target as HTMLInputElement).value)}
        />
        <button type="submit" id="act" ?disabled=${this.confirmation !== m.userId}>Do it</button>
      </fieldset>
      <p id="outcome" role="status">${this.outcome}</p>
      ${
        this.receipt === undefined
          ? nothing
          : html`<p id="receipt-status" class=${this.receipt.ok ? 'ok' : 'error'}>
              ${
                this.receipt.ok
                  ? `Receipt ${this.receipt.id} verified in this page: Ed25519 signature by key ${this.receipt.kid ?? '?'}. ` +
                    describeClaims(this.receipt.claims ?? {})
                  : `Receipt ${this.receipt.id} does NOT verify: ${this.receipt.problem ?? ''}`
              }
            </p>`
      }
    </form>`;
  }
}

customElements.define('deletion-desk', DeletionDesk);
