// Answers are Markdown from a model (or from a document it quotes), so src/ui/markdown.ts must never
// turn them into markup: raw HTML is shown as text, scripts, handlers, styles, frames, images and
// javascript: links never reach the page. Normal Markdown still renders, and links open in a new
// tab without telling it where they came from. The module runs in Chromium as Vite serves it; each
// result is parsed into a <template> there and checked as a DOM, not as a string.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchChromium } from './browser.ts';

const baseURL = inject('baseURL');

interface RenderedElement {
  tag: string;
  attrs: Record<string, string>;
  text: string;
}

interface Rendered {
  html: string;
  /** The text a reader sees (textContent of the whole fragment). */
  text: string;
  elements: RenderedElement[];
  comments: number;
}

let browser: Browser;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(baseURL);
});

afterAll(async () => {
  await browser?.close();
});

/** markdownToHtml(`markdown`) in the page, parsed there into a template's fragment. */
async function render(markdown: string): Promise<Rendered> {
  return page.evaluate(async ({ markdown, moduleUrl }) => {
    // The module as Vite serves it to the page (a plain import() here would be rewritten for Node).
    const importInPage = new Function('u', 'return import(u)') as (u: string) => Promise<typeof import('../src/ui/markdown.ts')>;
    const { markdownToHtml } = await importInPage(moduleUrl);
    const html = markdownToHtml(markdown);
    const template = document.createElement('template');
    template.innerHTML = html;
    const root = template.content;
    const elements = [...root.querySelectorAll('*')].map((el) => ({
      tag: el.tagName.toLowerCase(),
      attrs: Object.fromEntries([...el.attributes].map((a) => [a.name, a.value])),
      text: el.textContent ?? '',
    }));
    let comments = 0;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_COMMENT);
    while (walker.nextNode()) comments++;
    return { html, text: root.textContent ?? '', elements, comments };
  }, { markdown, moduleUrl: new URL('src/ui/markdown.ts', baseURL).href });
}

const DANGEROUS_TAGS = new Set(['script', 'style', 'iframe', 'img', 'object', 'embed', 'form', 'input', 'svg', 'math', 'link', 'meta', 'base']);

/** No element that runs, loads or styles anything, and no attribute that could. */
function expectInert(r: Rendered): void {
  const tags = r.elements.map((e) => e.tag);
  expect(tags.filter((t) => DANGEROUS_TAGS.has(t)), r.html).toEqual([]);
  for (const e of r.elements) {
    for (const [name, value] of Object.entries(e.attrs)) {
      expect(name.startsWith('on'), `${e.tag}[${name}] in ${r.html}`).toBe(false);
      expect(name, r.html).not.toBe('style');
      if (name === 'href' || name === 'src' || name === 'action' || name === 'xlink:href') {
        expect(value.trim().toLowerCase(), r.html).not.toMatch(/^(javascript|vbscript|data):/);
      }
    }
  }
  expect(r.comments, r.html).toBe(0);
}

describe('hostile Markdown never yields markup', () => {
  it('a script tag is shown as its text', async () => {
    const r = await render('Before <script>alert(1)</script> after');
    expectInert(r);
    expect(r.text).toContain('<script>alert(1)</script>');
  });

  it('a script block on its own line is text too', async () => {
    const r = await render('<script>\nalert(1)\n</script>');
    expectInert(r);
    expect(r.text).toContain('<script>');
    expect(r.text).toContain('alert(1)');
  });

  it('an image with onerror is text; a Markdown image is dropped', async () => {
    const r = await render('<img src=x onerror=alert(1)>\n\n![pic](https://e.org/x.png)');
    expectInert(r);
    expect(r.text).toContain('<img src=x onerror=alert(1)>');
    expect(r.elements.some((e) => e.tag === 'img')).toBe(false);
  });

  it('a javascript: link keeps its text but not its target', async () => {
    for (const href of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'data:text/html,<b>x</b>', 'vbscript:msgbox(1)']) {
      const r = await render(`[click me](${href})`);
      expectInert(r);
      expect(r.text).toContain('click me');
    }
  });

  it('a raw link with onclick is text, not a link', async () => {
    const r = await render('<a href="https://e.org" onclick="x()">site</a>');
    expectInert(r);
    expect(r.elements.filter((e) => e.tag === 'a')).toEqual([]);
    expect(r.text).toContain('onclick="x()"');
  });

  it('raw <b> is shown as text, not bold', async () => {
    const r = await render('a <b>bold</b> word');
    expectInert(r);
    expect(r.elements.some((e) => e.tag === 'b' || e.tag === 'strong')).toBe(false);
    expect(r.text).toContain('<b>bold</b>');
  });

  it('style, iframe, svg and a form are text', async () => {
    const r = await render(
      '<style>body { display: none }</style>\n\n<iframe src="https://e.org"></iframe>\n\n<svg onload="alert(1)"></svg>\n\n<form action="https://e.org"><input name=q></form>',
    );
    expectInert(r);
    expect(r.text).toContain('<style>body { display: none }</style>');
    expect(r.text).toContain('<iframe src="https://e.org"></iframe>');
  });

  it('an HTML comment is shown, not hidden in the page', async () => {
    const r = await render('visible <!-- secret --> text\n\n<!-- block comment -->');
    expectInert(r);
    expect(r.text).toContain('<!-- secret -->');
    expect(r.text).toContain('<!-- block comment -->');
  });

  it('HTML inside inline code and code blocks stays text', async () => {
    const r = await render('`<script>x</script>`\n\n```html\n<img src=x onerror=alert(1)>\n```');
    expectInert(r);
    const code = r.elements.filter((e) => e.tag === 'code').map((e) => e.text);
    expect(code[0]).toBe('<script>x</script>');
    expect(code[1]).toContain('<img src=x onerror=alert(1)>');
  });
});

describe('normal Markdown renders', () => {
  it('headings, lists, emphasis, code, tables and links', async () => {
    const r = await render(
      [
        '# Title',
        '## Section',
        '',
        'Some *emphasis*, **strong** and `code`.',
        '',
        '- one',
        '- two',
        '',
        '1. first',
        '2. second',
        '',
        '```js',
        'const a = 1 < 2;',
        '```',
        '',
        '| Method | TTFT |',
        '| --- | --- |',
        '| attnlink | 120 ms |',
        '',
        'See [the docs](https://e.org/docs) or https://example.com/x.',
      ].join('\n'),
    );
    expectInert(r);
    const byTag = (tag: string) => r.elements.filter((e) => e.tag === tag);
    expect(byTag('h1').map((e) => e.text)).toEqual(['Title']);
    expect(byTag('h2').map((e) => e.text)).toEqual(['Section']);
    expect(byTag('em').map((e) => e.text)).toEqual(['emphasis']);
    expect(byTag('strong').map((e) => e.text)).toEqual(['strong']);
    expect(byTag('ul')).toHaveLength(1);
    expect(byTag('ol')).toHaveLength(1);
    expect(byTag('li').map((e) => e.text.trim())).toEqual(['one', 'two', 'first', 'second']);
    expect(byTag('pre')).toHaveLength(1);
    expect(byTag('pre')[0].text).toContain('const a = 1 < 2;');
    expect(byTag('th').map((e) => e.text.trim())).toEqual(['Method', 'TTFT']);
    expect(byTag('td').map((e) => e.text.trim())).toEqual(['attnlink', '120 ms']);

    const links = byTag('a');
    expect(links.map((a) => a.attrs.href)).toEqual(['https://e.org/docs', 'https://example.com/x']);
    for (const a of links) {
      expect(a.attrs.target).toBe('_blank');
      expect(a.attrs.rel?.split(/\s+/).sort()).toEqual(['noopener', 'noreferrer']);
    }
  });

  it('line breaks inside a paragraph are kept (breaks: true)', async () => {
    const r = await render('line one\nline two');
    expect(r.elements.map((e) => e.tag)).toEqual(['p', 'br']);
  });
});
