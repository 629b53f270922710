// Entry of the demo page (index.html): registers <chunklm-app> and exposes the client it talks to
// as `window.chunklm`, for scripts, the console and browser tests (`await window.chunklmReady`
// resolves once the Worker answers). One client: the app's own, shared, never a second one.
import type { ChunklmClient } from '../api.ts';
import './chunklm-app.ts';

declare global {
  interface Window {
    /** The page's live client, once the Worker has answered. */
    chunklm?: ChunklmClient;
    chunklmReady?: Promise<ChunklmClient>;
  }
}

const app = document.querySelector('chunklm-app');
if (app) {
  window.chunklmReady = app.getClient().then((client) => (window.chunklm = client));
  // A failure shows on the page (with a retry); the console gets the details.
  window.chunklmReady.catch((err: unknown) => console.error('chunklm: the Worker did not start:', err));
}
