import { defineConfig } from 'vite';

// Everything is bundled: no CDN, no runtime network access besides the Faultline API.
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    target: 'es2022',
    // The polyfill would be inlined into index.html; the CSP forbids inline scripts.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` proxies the API to a local `faultline serve`.
    proxy: { '/api': 'http://127.0.0.1:16686' },
  },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
  },
} as never);
