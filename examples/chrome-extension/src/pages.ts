// The side panel's view of the browser's tabs: which pages can be read, which one the visitor is
// looking at, how a page's text is read (page-text.ts injected into the tab), and the document id
// a page is kept under. Only chrome.* and Web Crypto: no engine code here.
/// <reference path="./chrome.d.ts" />

/** What page-text.ts returns from a tab. */
export interface PageText {
  url: string;
  title: string;
  text: string;
  /** 'selection': the visitor's selection in the page; 'page': its main text (Readability). */
  from: 'selection' | 'page';
}

/** An open tab the extension may read. */
export interface PageTab {
  tabId: number;
  windowId: number;
  url: string;
  title: string;
}

/** Prefix of the ids of documents read from pages (other documents in the store are left alone). */
export const PAGE_ID_PREFIX = 'page:';

/** The injected script, at the root of the built extension (scripts/build-extension.mjs names it). */
const PAGE_TEXT_SCRIPT = 'page-text.js';

/** http and https pages only: the host permissions cover nothing else, and chrome:// pages refuse scripts. */
export function isReadableUrl(url: string | undefined): url is string {
  return url !== undefined && /^https?:\/\//i.test(url);
}

/**
 * The document id of a page: `page:` and the first 16 hex digits of the SHA-256 of its URL without
 * the fragment (`#section` is the same page). The same page in any tab is the same document, so
 * reading it again replaces it, and its unchanged chunks are found by content.
 */
export async function pageDocumentId(url: string): Promise<string> {
  const u = new URL(url);
  u.hash = '';
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(u.href)));
  const hex = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
  return PAGE_ID_PREFIX + hex;
}

/** Open http(s) tabs, window by window in tab order. */
export async function listPageTabs(): Promise<PageTab[]> {
  const tabs = await chrome.tabs.query({ url: ['http://*/*', 'https://*/*'] });
  return tabs
    .filter((t): t is chrome.tabs.Tab & { id: number; url: string } => t.id !== undefined && isReadableUrl(t.url))
    .sort((a, b) => a.windowId - b.windowId || a.index - b.index)
    .map((t) => ({ tabId: t.id, windowId: t.windowId, url: t.url, title: t.title?.trim() || t.url }));
}

/** The tab the visitor is looking at: the active tab of the last focused normal window (undefined when it is not an http(s) page). */
export async function activePageTabId(): Promise<number | undefined> {
  try {
    const win = await chrome.windows.getLastFocused({ windowTypes: ['normal'] });
    if (win.id === undefined) return undefined;
    const [tab] = await chrome.tabs.query({ active: true, windowId: win.id });
    return tab?.id !== undefined && isReadableUrl(tab.url) ? tab.id : undefined;
  } catch {
    return undefined; // no normal window (the panel opened as a page in a test, say)
  }
}

/** Calls `onChange` when a tab opens, closes, navigates or is renamed; returns the unsubscribe. */
export function watchTabs(onChange: () => void): () => void {
  const updated = (_id: number, change: { status?: string; url?: string; title?: string }): void => {
    if (change.url !== undefined || change.title !== undefined || change.status === 'complete') onChange();
  };
  const other = (): void => onChange();
  chrome.tabs.onUpdated.addListener(updated);
  chrome.tabs.onRemoved.addListener(other);
  chrome.tabs.onCreated.addListener(other);
  return () => {
    chrome.tabs.onUpdated.removeListener(updated);
    chrome.tabs.onRemoved.removeListener(other);
    chrome.tabs.onCreated.removeListener(other);
  };
}

/** Thrown when a tab cannot be read (closed, a page the browser protects, an empty page). */
export class PageReadError extends Error {
  override readonly name = 'PageReadError';
}

/**
 * Reads a tab's text in the tab itself (its top frame): the selection when there is one, else the
 * main text. Nothing leaves the machine: the text comes back to this panel and goes to the engine.
 */
export async function readTab(tabId: number): Promise<PageText> {
  try {
    // Once per page: the script's top-level bindings would clash if it ran twice in the same
    // isolated world (a navigation starts a new one).
    const [probe] = await chrome.scripting.executeScript({
      target: { tabId },
      func: () => typeof (globalThis as { chunklmReadPage?: unknown }).chunklmReadPage === 'function',
    });
    if (!probe?.result) await chrome.scripting.executeScript({ target: { tabId }, files: [PAGE_TEXT_SCRIPT] });
    const [frame] = await chrome.scripting.executeScript({
      target: { tabId },
      func: () => (globalThis as { chunklmReadPage?: () => PageText }).chunklmReadPage?.(),
    });
    const page = frame?.result;
    if (!page) throw new PageReadError('the page did not answer (it may still be loading); try again');
    if (!page.text.trim()) throw new PageReadError('the page has no text to read');
    return page;
  } catch (err) {
    if (err instanceof PageReadError) throw err;
    // executeScript refuses protected pages (the Chrome Web Store, other extensions) and closed tabs.
    throw new PageReadError(`this page cannot be read: ${(err as Error)?.message ?? String(err)}`);
  }
}
