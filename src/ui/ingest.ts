// Turns a file the visitor dropped into plain text for documents.add: text and Markdown as they
// are, HTML through Readability (the page's main text), PDF through pdf.js (loaded only when the
// first PDF is opened: it is about 1.4 MB with its worker). Runs on the page, not in the engine's
// Worker: DOMParser exists only here, and pdf.js starts a worker of its own.
import { Readability } from '@mozilla/readability';
import { AbortedError, ChunklmError, InvalidRequestError, throwIfAborted } from '../api.ts';

export type DocumentKind = 'text' | 'markdown' | 'html' | 'pdf';

export interface ReadDocument {
  title: string;
  text: string;
  kind: DocumentKind;
}

export interface ReadDocumentOptions {
  signal?: AbortSignal;
}

/** What the file inputs accept; keep in step with kindOf. */
export const DOCUMENT_FILE_ACCEPT = '.txt,.md,.markdown,.html,.htm,.pdf';

const KIND_BY_EXTENSION: Record<string, DocumentKind> = {
  txt: 'text',
  text: 'text',
  md: 'markdown',
  markdown: 'markdown',
  html: 'html',
  htm: 'html',
  pdf: 'pdf',
};

const KIND_BY_MIME: Record<string, DocumentKind> = {
  'text/plain': 'text',
  'text/markdown': 'markdown',
  'text/x-markdown': 'markdown',
  'text/html': 'html',
  'application/xhtml+xml': 'html',
  'application/pdf': 'pdf',
};

/**
 * Reads a .txt, .md/.markdown, .html/.htm or .pdf file (by extension, else by MIME type) as text
 * and a title. Throws InvalidRequestError 'unsupported-file', 'bad-pdf' or 'empty-document', and
 * AbortedError when the signal fires.
 */
export async function readDocumentFile(file: File, opts: ReadDocumentOptions = {}): Promise<ReadDocument> {
  const { signal } = opts;
  throwIfAborted(signal);
  const kind = kindOf(file);
  if (!kind) {
    const what = extensionOf(file.name) ? `a .${extensionOf(file.name)} file` : file.type ? `of type ${file.type}` : 'of an unknown type';
    throw new InvalidRequestError('unsupported-file', `chunklm reads .txt, .md, .html and .pdf files; ${file.name} is ${what}`, {
      name: file.name,
      type: file.type,
    });
  }
  const fallbackTitle = titleFromFileName(file.name);
  let doc: ReadDocument;
  if (kind === 'pdf') {
    doc = await readPdf(file, fallbackTitle, signal);
  } else {
    const raw = stripBom(await file.text());
    throwIfAborted(signal);
    if (kind === 'html') doc = { ...htmlToDocument(raw, fallbackTitle), kind };
    else doc = { title: markdownTitle(raw) ?? fallbackTitle, text: raw, kind };
  }
  if (doc.text.trim().length === 0) {
    const why = kind === 'pdf' ? ' (a scanned PDF has only images; chunklm does not recognise text in them)' : '';
    throw new InvalidRequestError('empty-document', `${file.name} has no text to read${why}`, { name: file.name });
  }
  return doc;
}

/** The kind of a file from its extension, or from its MIME type when the extension says nothing. */
export function kindOf(file: { name: string; type: string }): DocumentKind | undefined {
  const ext = extensionOf(file.name);
  if (ext) {
    const byExt = KIND_BY_EXTENSION[ext];
    if (byExt) return byExt;
  }
  return KIND_BY_MIME[file.type.split(';')[0].trim().toLowerCase()];
}

function extensionOf(name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  return dot > 0 && dot < name.length - 1 ? name.slice(dot + 1).toLowerCase() : undefined;
}

/** "notes.v2.md" → "notes.v2"; names without an extension stay as they are. */
export function titleFromFileName(name: string): string {
  const dot = name.lastIndexOf('.');
  const base = dot > 0 ? name.slice(0, dot) : name;
  return base.trim() || name;
}

/** The text of the first `# ` heading (ATX level 1), outside fenced code. */
export function markdownTitle(text: string): string | undefined {
  let fenced = false;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s{0,3}(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const m = /^\s{0,3}#\s+(.+?)\s*#*\s*$/.exec(line);
    if (m && m[1].trim()) return m[1].trim();
  }
  return undefined;
}

function stripBom(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

// ---------------------------------------------------------------------------------------------
// HTML

/** The main text of an HTML page (Readability), else its whole body; paragraphs kept. */
export function htmlToDocument(html: string, fallbackTitle: string): { title: string; text: string } {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  const pageTitle = doc.title.trim();
  let article: ReturnType<Readability['parse']> = null;
  try {
    // Readability rewrites the document it is given, hence the clone (the body stays the fallback).
    article = new Readability(doc.cloneNode(true) as Document).parse();
  } catch {
    article = null; // a page Readability cannot handle is read whole
  }
  let text = '';
  if (article?.content) {
    const body = new DOMParser().parseFromString(article.content, 'text/html').body;
    text = elementText(body);
  }
  if (!text && article?.textContent) text = normaliseText(article.textContent);
  // No article found (a page of links, a form): the whole body, as innerText would give it.
  if (!text && doc.body) text = elementText(doc.body);
  const title = article?.title?.trim() || pageTitle || fallbackTitle;
  return { title, text };
}

const SKIPPED = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'SVG', 'CANVAS', 'IFRAME', 'OBJECT', 'HEAD', 'BUTTON', 'SELECT', 'INPUT', 'TEXTAREA']);
const BLOCKS = new Set([
  'ADDRESS', 'ARTICLE', 'ASIDE', 'BLOCKQUOTE', 'BODY', 'DD', 'DETAILS', 'DIV', 'DL', 'DT', 'FIELDSET', 'FIGCAPTION', 'FIGURE',
  'FOOTER', 'FORM', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'HEADER', 'HR', 'LI', 'MAIN', 'NAV', 'OL', 'P', 'PRE', 'SECTION',
  'SUMMARY', 'TABLE', 'TBODY', 'TD', 'TFOOT', 'TH', 'THEAD', 'TR', 'UL', 'CAPTION',
]);
/** Blocks that end a line but not a paragraph. */
const LINE_BLOCKS = new Set(['LI', 'DT', 'DD', 'TR']);

/**
 * Text of an element as innerText would lay it out, without a layout (a parsed document has
 * none): whitespace collapsed inside paragraphs, a blank line between blocks, one line break per
 * list item, table row or <br>, the line breaks of <pre> kept.
 */
export function elementText(root: Element): string {
  // Breaks are collected as markers and resolved at the end: '\u0001' a line, '\u0002' a
  // paragraph (a run of markers is one break, the widest), '\u0003' a line break inside <pre>,
  // '\u0004' a <br> (two in a row make a paragraph).
  const out: string[] = [];
  const walk = (node: Node, pre: boolean): void => {
    if (node.nodeType === 3) {
      const t = node.nodeValue ?? '';
      out.push(pre ? t.replace(/\n/g, '\u0003') : t.replace(/\s+/g, ' '));
      return;
    }
    if (node.nodeType !== 1) return;
    const el = node as Element;
    const tag = el.tagName.toUpperCase();
    if (SKIPPED.has(tag) || el.hasAttribute('hidden') || el.getAttribute('aria-hidden') === 'true') return;
    if (tag === 'BR') {
      out.push('\u0004');
      return;
    }
    // Table cells are separated by a tab on their row's line.
    const cell = tag === 'TD' || tag === 'TH';
    const block = BLOCKS.has(tag) && !cell;
    const mark = LINE_BLOCKS.has(tag) ? '\u0001' : '\u0002';
    out.push(cell ? '\t' : block ? mark : '');
    for (const child of Array.from(el.childNodes)) walk(child, pre || tag === 'PRE');
    if (block) out.push(mark);
  };
  walk(root, false);
  return normaliseText(out.join(''));
}

/** Trims lines, collapses runs of spaces, at most one blank line between paragraphs. */
function normaliseText(s: string): string {
  return s
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t]*[\u0001\u0002\u0004][\u0001\u0002\u0004 \t]*/g, (run) =>
      run.includes('\u0002') || run.split('\u0004').length > 2 ? '\n\n' : '\n',
    )
    .replace(/\u0003/g, '\n')
    .replace(/\u00a0/g, ' ')
    .replace(/[ \f\v]*\t[ \f\v\t]*/g, '\t')
    .replace(/[ \f\v]+/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

// ---------------------------------------------------------------------------------------------
// PDF

type PdfJs = typeof import('pdfjs-dist');

let pdfjsPromise: Promise<PdfJs> | undefined;

/**
 * pdf.js and its worker, loaded on first use. The worker is a separate file that Vite emits as an
 * asset (`?url`): with base './' its URL is relative to the script, so the build works at any
 * path. pdf.js starts it as a module worker itself.
 */
function loadPdfJs(): Promise<PdfJs> {
  pdfjsPromise ??= (async () => {
    const [pdfjs, worker] = await Promise.all([import('pdfjs-dist'), import('pdfjs-dist/build/pdf.worker.min.mjs?url')]);
    pdfjs.GlobalWorkerOptions.workerSrc = worker.default;
    return pdfjs;
  })();
  // A failed load (offline before the chunk was cached) is retried next time.
  pdfjsPromise.catch(() => (pdfjsPromise = undefined));
  return pdfjsPromise;
}

async function readPdf(file: File, fallbackTitle: string, signal: AbortSignal | undefined): Promise<ReadDocument> {
  let pdfjs: PdfJs;
  try {
    pdfjs = await loadPdfJs();
  } catch (err) {
    throw new InvalidRequestError('pdf-unavailable', `the PDF reader could not be loaded (${messageOf(err)}); reload the page and try again`, {
      name: file.name,
    });
  }
  throwIfAborted(signal);
  const data = new Uint8Array(await file.arrayBuffer());
  const { title, text } = await extractPdfText(pdfjs, data, { name: file.name, fallbackTitle, signal });
  return { title, text, kind: 'pdf' };
}

/**
 * The text of a PDF, page by page, with its metadata title. Takes the pdf.js module so that it
 * also runs under Node with the legacy build (tests). Errors: InvalidRequestError 'bad-pdf', or
 * AbortedError.
 */
export async function extractPdfText(
  pdfjs: Pick<PdfJs, 'getDocument'>,
  data: Uint8Array,
  opts: { name: string; fallbackTitle: string; signal?: AbortSignal },
): Promise<{ title: string; text: string; pages: number }> {
  const { name, signal } = opts;
  // No eval (a strict CSP forbids it) and no font loading: only text is wanted.
  const task = pdfjs.getDocument({ data, isEvalSupported: false, disableFontFace: true, useSystemFonts: false, verbosity: 0 });
  const onAbort = (): void => void task.destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const pdf = await task.promise;
    const title = await pdfTitle(pdf).catch(() => undefined);
    const pages: string[] = [];
    for (let n = 1; n <= pdf.numPages; n++) {
      throwIfAborted(signal);
      const page = await pdf.getPage(n);
      const content = await page.getTextContent();
      page.cleanup();
      const text = pdfPageText(content.items);
      if (text) pages.push(text);
    }
    throwIfAborted(signal);
    return { title: title || opts.fallbackTitle, text: pages.join('\n\n'), pages: pdf.numPages };
  } catch (err) {
    if (signal?.aborted) throw new AbortedError();
    if (err instanceof ChunklmError) throw err;
    throw new InvalidRequestError('bad-pdf', `could not read ${name} as a PDF: ${pdfReason(err)}`, { name });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    void task.destroy();
  }
}

async function pdfTitle(pdf: { getMetadata(): Promise<{ info: object; metadata: { get(name: string): unknown } | null }> }): Promise<string | undefined> {
  const { info, metadata } = await pdf.getMetadata();
  const candidates = [(info as { Title?: unknown }).Title, metadata?.get('dc:title')];
  for (const c of candidates) {
    if (typeof c === 'string' && c.trim()) return c.trim();
  }
  return undefined;
}

function pdfReason(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: number } | undefined;
  if (e?.name === 'PasswordException') return 'it is protected by a password (open it in a PDF viewer and save an unprotected copy)';
  if (e?.name === 'InvalidPDFException') return 'it is not a valid PDF file (damaged or not a PDF)';
  return messageOf(err) || 'unknown error';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A pdf.js text item, as far as layout goes (marked-content items carry no `str`). */
interface PdfTextItem {
  str: string;
  transform: number[];
  width: number;
  height: number;
  hasEOL: boolean;
}

interface PdfLine {
  text: string;
  /** Baseline y of its first item, and its font size (PDF user units). */
  y: number;
  size: number;
}

/**
 * One page's text from its text items: items on a line joined (with a space where the gap
 * between them is wider than a fraction of the font size, or where pdf.js ends a line), lines
 * joined into paragraphs, a blank line where the gap between baselines is much wider than the
 * font size. Words hyphenated across lines are joined again.
 */
export function pdfPageText(items: readonly unknown[]): string {
  const lines: PdfLine[] = [];
  let line: PdfLine | undefined;
  let lastEnd: number | undefined; // x where the previous item on this line ends
  let endLine = false;
  for (const raw of items) {
    if (!raw || typeof (raw as PdfTextItem).str !== 'string') continue;
    const item = raw as PdfTextItem;
    const [a, b, c, d, x, y] = item.transform;
    const size = Math.hypot(c, d) || Math.hypot(a, b) || item.height || 1;
    const newLine = !line || endLine || Math.abs(y - line.y) > size * 0.5;
    if (newLine) {
      if (line && line.text.trim()) lines.push(line);
      line = { text: '', y, size };
      lastEnd = undefined;
    }
    const cur = line!;
    if (item.str) {
      const gap = lastEnd === undefined ? 0 : x - lastEnd;
      const needsSpace = cur.text !== '' && !/\s$/.test(cur.text) && !/^\s/.test(item.str) && gap > size * 0.15;
      cur.text += (needsSpace ? ' ' : '') + item.str;
      cur.size = Math.max(cur.size, size);
      lastEnd = x + item.width;
    }
    endLine = item.hasEOL;
  }
  if (line && line.text.trim()) lines.push(line);

  const paragraphs: string[] = [];
  let para = '';
  let prev: PdfLine | undefined;
  for (const l of lines) {
    const text = l.text.replace(/\s+/g, ' ').trim();
    const gap = prev ? Math.abs(prev.y - l.y) : 0;
    const breakHere = prev !== undefined && (gap > Math.max(prev.size, l.size) * 1.75 || Math.abs(l.size - prev.size) > prev.size * 0.2);
    if (breakHere && para) {
      paragraphs.push(para);
      para = '';
    }
    if (!para) para = text;
    else if (/\p{L}-$/u.test(para) && /^\p{Ll}/u.test(text)) para = para.slice(0, -1) + text;
    else para += ' ' + text;
    prev = l;
  }
  if (para) paragraphs.push(para);
  return paragraphs.join('\n\n');
}
