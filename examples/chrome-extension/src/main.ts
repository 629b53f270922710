// Entry of the side panel (sidepanel.html): registers <chunklm-extension-app> and exposes its
// client as `window.chunklm` once the Worker answers (`window.chunklmReady`), as the demo page does,
// for the console and the browser test.
import type { ChunklmClient } from '../../../src/api.ts';
import './panel-app.ts';

declare global {
  interface Window {
    chunklm?: ChunklmClient;
    chunklmReady?: Promise<ChunklmClient>;
  }
}

const app = document.querySelector('chunklm-extension-app');
if (app) {
  window.chunklmReady = app.getClient().then((client) => (window.chunklm = client));
  window.chunklmReady.catch((err: unknown) => console.error('chunklm: the Worker did not start:', err));
}
