// Screenshot a page of the Prefect UI once it has rendered (used by docs/ui/screenshot.sh).
// node screenshot.js URL OUT.png [TEXT to wait for]; needs playwright-core and /usr/bin/chromium.
const { chromium } = require('playwright-core');

(async () => {
  const [url, out, waitText] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  await page.goto(url, { waitUntil: 'networkidle' });
  if (waitText) await page.getByText(waitText, { exact: false }).first().waitFor({ timeout: 20000 });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
