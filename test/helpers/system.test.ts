import { afterEach, describe, expect, it } from 'vitest';
import { requireSystem } from './system.js';

const savedCi = process.env['CI'];
afterEach(() => {
  if (savedCi === undefined) delete process.env['CI'];
  else process.env['CI'] = savedCi;
});

describe('when a required tool is present', () => {
  it('returns null', () => {
    delete process.env['CI'];
    expect(requireSystem(['sh'])).toBeNull();
  });
});

describe('when a required tool is missing', () => {
  it('returns a skip reason naming it outside CI', () => {
    delete process.env['CI'];
    expect(requireSystem(['sh', 'glassbox-no-such-tool-7f3a'])).toBe('missing: glassbox-no-such-tool-7f3a');
  });

  it('throws under CI=true instead of skipping', () => {
    process.env['CI'] = 'true';
    expect(() => requireSystem(['glassbox-no-such-tool-7f3a'])).toThrow(/CI.*glassbox-no-such-tool-7f3a/);
  });

  it('refuses a tool name that could inject shell', () => {
    expect(() => requireSystem(['sh; rm -rf /'])).toThrow(/bad tool name/);
  });
});
