// Entry of the demo page (index.html): registers <chunklm-demo> and exposes the client it talks
// to as `window.chunklm`, for scripts, the console and browser tests (`await window.chunklmReady`
// resolves once the Worker answers). One client: the element's own, shared, never a second one.
import type { ChunklmClient } from '../client/client.ts';
import './chunklm-demo.ts';

declare global {
  interface Window {
    /** The page's live client, once the Worker has answered. */
    chunklm?: ChunklmClient;
    chunklmReady?: Promise<ChunklmClient>;
  }
}

const demo = document.querySelector('chunklm-demo');
if (demo) {
  window.chunklmReady = demo.getClient().then((client) => (window.chunklm = client));
  // A failure shows on the page when the demo next asks for the client (it starts a new one then).
  window.chunklmReady.catch((err: unknown) => console.error('chunklm: the Worker did not start:', err));
}
