/**
 * Debian's Chromium for the page tests, launched the one way this project allows (never a
 * downloaded browser): headless, no sandbox, no GPU, no background networking.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** Page tests run wherever Chromium is installed, and always in CI (a missing browser then fails). */
export const BROWSER_REQUIRED = existsSync(CHROMIUM) || process.env.CI === 'true';

/** Launches Debian's Chromium headless. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
