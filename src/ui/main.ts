// Entry of the demo page (index.html): starts the Worker's client, hands it to <chunklm-demo>,
// and exposes it as `window.chunklm` for scripts, the console and browser tests
// (`await window.chunklmReady` resolves once the Worker answers).
import { ChunklmClient } from '../client/client.ts';
import './chunklm-demo.ts';

declare global {
  interface Window {
    /** The page's live client, once the Worker has answered. */
    chunklm?: ChunklmClient;
    chunklmReady?: Promise<ChunklmClient>;
  }
}

window.chunklmReady = ChunklmClient.create().then((client) => {
  window.chunklm = client;
  for (const el of document.querySelectorAll('chunklm-demo')) el.client = client;
  return client;
});
// A failure shows on the page the first time the demo asks for the client (it makes its own then).
window.chunklmReady.catch((err: unknown) => console.error('chunklm: the Worker did not start:', err));
