// The parts of src/ui/ingest.ts that need no DOM, in Node: file kinds, titles from file names and
// Markdown headings, and readDocumentFile on text and Markdown files (Node's global File), empty
// ones and unsupported ones. (HTML needs DOMParser and PDF needs pdf.js: the browser tests cover them.)
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../src/errors.ts';
import { DOCUMENT_FILE_ACCEPT, kindOf, markdownTitle, readDocumentFile, titleFromFileName } from '../../src/ui/ingest.ts';

describe('kindOf', () => {
  it('by extension, case-insensitive, before the MIME type', () => {
    expect(kindOf({ name: 'a.TXT', type: '' })).toBe('text');
    expect(kindOf({ name: 'notes.markdown', type: 'text/plain' })).toBe('markdown');
    expect(kindOf({ name: 'page.htm', type: '' })).toBe('html');
    expect(kindOf({ name: 'paper.pdf', type: 'application/octet-stream' })).toBe('pdf');
  });

  it('by MIME type (parameters ignored) when the extension says nothing', () => {
    expect(kindOf({ name: 'README', type: 'text/markdown; charset=utf-8' })).toBe('markdown');
    expect(kindOf({ name: 'download', type: 'Application/PDF' })).toBe('pdf');
    expect(kindOf({ name: 'x.bin', type: 'text/html' })).toBe('html');
  });

  it('undefined for what it does not read; a leading dot is not an extension', () => {
    expect(kindOf({ name: 'photo.png', type: 'image/png' })).toBeUndefined();
    expect(kindOf({ name: '.md', type: '' })).toBeUndefined();
    expect(kindOf({ name: 'trailing.', type: '' })).toBeUndefined();
  });

  it('every extension the inputs accept has a kind', () => {
    for (const ext of DOCUMENT_FILE_ACCEPT.split(',')) expect(kindOf({ name: `f${ext}`, type: '' }), ext).toBeDefined();
  });
});

describe('titleFromFileName', () => {
  it('drops the last extension only', () => {
    expect(titleFromFileName('notes.v2.md')).toBe('notes.v2');
    expect(titleFromFileName('README')).toBe('README');
    expect(titleFromFileName('.bashrc')).toBe('.bashrc');
    expect(titleFromFileName(' .md')).toBe(' .md');
  });
});

describe('markdownTitle', () => {
  it('the first level-1 ATX heading, closing hashes trimmed', () => {
    expect(markdownTitle('intro\n## Sub\n# The Title ##\n# Second')).toBe('The Title');
    expect(markdownTitle('   # Indented')).toBe('Indented');
  });

  it('not inside fenced code, not level 2, not without a space', () => {
    expect(markdownTitle('```\n# comment\n```\n# Real')).toBe('Real');
    expect(markdownTitle('~~~sh\n# not\n~~~')).toBeUndefined();
    expect(markdownTitle('## Level two\n#hashtag')).toBeUndefined();
    expect(markdownTitle('    # four spaces is code')).toBeUndefined();
  });
});

describe('readDocumentFile', () => {
  it('Markdown: the text as is (BOM dropped), titled by its heading', async () => {
    const text = '\ufeff# Cache notes\n\nChunks are kept.\n';
    const doc = await readDocumentFile(new File([text], 'notes.md', { type: 'text/markdown' }));
    expect(doc).toEqual({ title: 'Cache notes', text: '# Cache notes\n\nChunks are kept.\n', kind: 'markdown' });
  });

  it('text: titled by its file name', async () => {
    const doc = await readDocumentFile(new File(['just words'], 'plain.v1.txt'));
    expect(doc).toEqual({ title: 'plain.v1', text: 'just words', kind: 'text' });
  });

  it('an empty or blank file: empty-document', async () => {
    for (const body of ['', ' \n\t\n']) {
      const err = await readDocumentFile(new File([body], 'blank.txt')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidRequestError);
      expect((err as InvalidRequestError).code).toBe('empty-document');
      expect((err as InvalidRequestError).message).toContain('blank.txt');
    }
  });

  it('an unsupported file: unsupported-file, naming its extension or type', async () => {
    const png = await readDocumentFile(new File([new Uint8Array([0x89, 0x50])], 'photo.png', { type: 'image/png' })).catch((e: unknown) => e);
    expect(png).toBeInstanceOf(InvalidRequestError);
    expect((png as InvalidRequestError).code).toBe('unsupported-file');
    expect((png as InvalidRequestError).message).toContain('a .png file');
    const typed = await readDocumentFile(new File(['x'], 'blob', { type: 'application/zip' })).catch((e: unknown) => e);
    expect((typed as InvalidRequestError).message).toContain('of type application/zip');
  });

  it('an aborted signal: AbortedError before anything is read', async () => {
    const err = await readDocumentFile(new File(['x'], 'a.txt'), { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortedError');
  });
});
