// Injected into a tab the visitor chose (chrome.scripting.executeScript with `files`), in the
// extension's isolated world: it defines `chunklmReadPage()`, which the side panel then calls
// with a second executeScript. A script file's own completion value is not a reliable way to
// return something through a bundler, hence the two steps. Built as a classic script (no imports
// or exports left: scripts/build-extension.mjs checks).
//
// The page's main text comes from Readability on a copy of the page (htmlToDocument parses the
// serialised DOM, so the page itself is never modified), with paragraph breaks kept, because the
// chunker cuts at paragraphs; a selection, when there is one, is read instead.
import { htmlToDocument } from '../../../src/ui/ingest.ts';
import type { PageText } from './pages.ts';

function chunklmReadPage(): PageText {
  const url = location.href;
  const pageTitle = document.title.trim() || location.hostname;
  const selection = window.getSelection()?.toString().trim() ?? '';
  if (selection) return { url, title: pageTitle, text: selection, from: 'selection' };
  const { text } = htmlToDocument(document.documentElement.outerHTML, pageTitle);
  return { url, title: pageTitle, text, from: 'page' };
}

(globalThis as { chunklmReadPage?: () => PageText }).chunklmReadPage = chunklmReadPage;
