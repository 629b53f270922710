// Model answers as Markdown: parsed by marked with raw HTML escaped (a model or a document never
// gets to write markup), then sanitized by DOMPurify as a second guard before Lit inserts it.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';
import { unsafeHTML } from 'lit/directives/unsafe-html.js';
import type { DirectiveResult } from 'lit/directive.js';

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // Raw HTML in the text is shown as text, not interpreted.
    html: ({ text }) => escapeHtml(text),
  },
});

const purify = DOMPurify(window);
purify.addHook('afterSanitizeAttributes', (node) => {
  // Links open in a new tab and tell the target nothing about this page.
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
  // Images would fetch from anywhere the text names: not in answers.
  if (node.tagName === 'IMG') node.remove();
});

/** Sanitized HTML of `markdown`, for Lit to render. */
export function markdownToHtml(markdown: string): string {
  const raw = marked.parse(markdown) as string;
  return purify.sanitize(raw, { USE_PROFILES: { html: true }, FORBID_TAGS: ['style', 'form', 'input', 'img', 'iframe'], FORBID_ATTR: ['style'] });
}

export function renderMarkdown(markdown: string): DirectiveResult {
  return unsafeHTML(markdownToHtml(markdown));
}
