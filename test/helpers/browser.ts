/**
 * The system's Chromium (Debian package `chromium`, never a downloaded browser) driven by
 * playwright-core, headless, in a fresh profile directory; screenshots go to
 * test-output/<suite>/ at the repository root (gitignored).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { ROOT, tempDir } from './daemon';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export interface TestBrowser {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly shots: string;
  screenshot(name: string, page?: Page): Promise<string>;
  close(): Promise<void>;
}

export async function startBrowser(suite: string): Promise<TestBrowser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/install-deps.sh installs the chromium package`);
  const profile = tempDir('igw-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const shots = path.join(ROOT, 'test-output', suite);
  fs.mkdirSync(shots, { recursive: true });
  return {
    context,
    page,
    shots,
    screenshot: async (name, p = page) => {
      const file = path.join(shots, `${name}.png`);
      await p.screenshot({ path: file, fullPage: true });
      return file;
    },
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
