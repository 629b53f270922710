// The demo's look, shared by every component: colours as custom properties (light and dark from
// the visitor's colour scheme, set on the page in index.html), and the controls' base styles.
import { css } from 'lit';

/** Base styles every panel adopts: type, buttons, fields, progress bars, focus rings. */
export const baseStyles = css`
  :host {
    display: block;
    color: var(--fg);
    font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
  }
  *,
  *::before,
  *::after {
    box-sizing: border-box;
  }
  h2 {
    font-size: 1rem;
    font-weight: 650;
    margin: 0 0 0.75rem;
    letter-spacing: 0.01em;
  }
  h3 {
    font-size: 0.9rem;
    font-weight: 600;
    margin: 1rem 0 0.5rem;
    color: var(--muted);
  }
  p {
    margin: 0.25rem 0 0.5rem;
  }
  .muted {
    color: var(--muted);
    font-size: 0.85rem;
  }
  .panel {
    background: var(--surface);
    border: 1px solid var(--border);
    border-radius: 12px;
    padding: 1rem;
  }
  button {
    font: inherit;
    font-size: 0.9rem;
    border-radius: 8px;
    border: 1px solid var(--border-strong);
    background: var(--surface-2);
    color: var(--fg);
    padding: 0.4rem 0.8rem;
    cursor: pointer;
    min-height: 2.25rem;
  }
  button:hover:not(:disabled) {
    background: var(--hover);
  }
  button.primary {
    background: var(--accent);
    border-color: var(--accent);
    color: var(--on-accent);
    font-weight: 600;
  }
  button.primary:hover:not(:disabled) {
    background: var(--accent-strong);
  }
  button.danger {
    color: var(--danger);
  }
  button.link {
    border: none;
    background: none;
    color: var(--accent-text);
    padding: 0 0.2rem;
    min-height: 0;
    text-decoration: underline;
  }
  button:disabled {
    opacity: 0.5;
    cursor: not-allowed;
  }
  input,
  select,
  textarea {
    font: inherit;
    font-size: 0.9rem;
    color: var(--fg);
    background: var(--field);
    border: 1px solid var(--border-strong);
    border-radius: 8px;
    padding: 0.4rem 0.55rem;
    min-height: 2.25rem;
    max-width: 100%;
  }
  textarea {
    resize: vertical;
    width: 100%;
  }
  label {
    font-size: 0.85rem;
    color: var(--muted);
  }
  :focus-visible {
    outline: 3px solid var(--focus);
    outline-offset: 2px;
  }
  progress {
    width: 100%;
    height: 0.6rem;
    accent-color: var(--accent);
  }
  .row {
    display: flex;
    flex-wrap: wrap;
    gap: 0.5rem;
    align-items: center;
  }
  .error {
    border: 1px solid var(--danger);
    background: var(--danger-bg);
    color: var(--fg);
    border-radius: 8px;
    padding: 0.6rem 0.8rem;
    margin: 0.5rem 0;
  }
  .warning {
    border: 1px solid var(--warn);
    background: var(--warn-bg);
    border-radius: 8px;
    padding: 0.5rem 0.8rem;
    margin: 0.5rem 0;
    font-size: 0.85rem;
  }
  .badge {
    display: inline-block;
    font-size: 0.75rem;
    font-weight: 600;
    border-radius: 999px;
    padding: 0.05rem 0.5rem;
    background: var(--surface-2);
    border: 1px solid var(--border);
    color: var(--muted);
    white-space: nowrap;
  }
  .badge.ok {
    color: var(--ok);
    border-color: var(--ok);
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
  }
`;

/**
 * Colours of where a chunk's KV came from and of each method, used by the chart, the answer
 * details and the documents list alike.
 */
export const SOURCE_COLOURS = {
  computed: 'var(--c-computed)',
  store: 'var(--c-store)',
  memory: 'var(--c-memory)',
  gpu: 'var(--c-gpu)',
} as const;
