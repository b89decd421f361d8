// Drives the operators' dashboard in Debian's Chromium, as an operator would:
//   node admin.mjs BASE_URL ADMIN_TOKEN FAILED_FILENAME SCREENSHOT_DIR
// Signs in, checks the session cookie and the security headers, has another site's page post
// a form to the dashboard (refused), finds the failed file, pauses and resumes a queue,
// presses Retry, watches the page refresh itself until the file's retry job completes, opens
// the job's page, signs out and finds the old cookie dead.
// Screenshots of each page go to SCREENSHOT_DIR. Exits non-zero on the first surprise.
import http from 'node:http';
import { chromium } from 'playwright-core';

const [base, token, filename, shots] = process.argv.slice(2);
const fail = (msg) => { throw new Error(msg); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  // Not signed in: the sign-in page, never the data.
  await page.goto(`${base}/admin`);
  if (!page.url().endsWith('/admin/login')) fail(`expected the sign-in page, got ${page.url()}`);
  if ((await page.content()).includes(filename)) fail('the sign-in page shows data');
  await page.fill('input[name=token]', 'not-a-token');
  await page.click('main button[type=submit]');
  await page.getByText("That is not an operator's token.").waitFor();
  await page.screenshot({ path: `${shots}/admin-login.png` });

  await page.fill('input[name=token]', token);
  await page.click('main button[type=submit]');
  await page.waitForURL(`${base}/admin`);

  // A server-side session: the cookie is a random id, never the token, and scripts cannot read it.
  const [cookie] = (await context.cookies(`${base}/admin`)).filter((c) => c.name === 'timeline_admin');
  if (!cookie) fail('no session cookie');
  if (cookie.value.includes(token) || !cookie.httpOnly || cookie.sameSite !== 'Strict' || cookie.path !== '/admin') {
    fail(`session cookie: ${JSON.stringify({ ...cookie, value: '…' })}`);
  }
  const dash = await page.reload();
  const headers = dash.headers();
  if (!(headers['content-security-policy'] || '').includes("frame-ancestors 'none'")) fail(`CSP: ${headers['content-security-policy']}`);
  if (headers['x-content-type-options'] !== 'nosniff') fail('no nosniff');
  // The CSP allows the page's own style: it renders styled (the header bar is dark).
  const bar = await page.locator('header').evaluate((e) => getComputedStyle(e).backgroundColor);
  if (bar !== 'rgb(29, 36, 48)') fail(`the page's style is blocked: header background ${bar}`);

  // Another site's page posts a form to the dashboard in the operator's browser: refused.
  const evil = http.createServer((_, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<form method="post" action="${base}/admin/queues/hash/pause"></form>
             <script>document.forms[0].submit()</script>`);
  });
  await new Promise((ok) => evil.listen(0, '127.0.0.1', ok));
  try {
    const attack = await context.newPage();
    const refused = attack.waitForResponse((r) => r.url() === `${base}/admin/queues/hash/pause`);
    await attack.goto(`http://127.0.0.1:${evil.address().port}/`);
    const status = (await refused).status();
    if (status !== 403) fail(`a cross-site form post answered ${status}`);
    await attack.close();
  } finally {
    evil.close();
  }
  await page.reload();
  await page.locator('#queues tr[data-queue=hash] .ok').waitFor();

  // The failure, with its owner and reason.
  const row = page.locator('#failures tr', { hasText: filename });
  await row.waitFor();
  const text = await row.innerText();
  if (!text.includes('owner@example.org')) fail(`no owner in: ${text}`);
  if (!text.includes('pixel')) fail(`no reason in: ${text}`);
  const queues = await page.locator('#queues').innerText();
  for (const q of ['hash', 'exif', 'thumbnail', 'video']) if (!queues.includes(q)) fail(`queue ${q} missing`);
  await page.locator('#workers tr', { hasText: 'hash-' }).first().waitFor();
  await page.screenshot({ path: `${shots}/admin-dashboard.png`, fullPage: true });

  // Pause and resume a queue.
  const hash = page.locator('#queues tr[data-queue=hash]');
  await hash.getByRole('button', { name: 'Pause' }).click();
  await page.locator('#queues tr[data-queue=hash] .paused').waitFor();
  await page.locator('#queues tr[data-queue=hash]').getByRole('button', { name: 'Resume' }).click();
  await page.locator('#queues tr[data-queue=hash] .ok').waitFor();

  // Retry, then let the page refresh itself (every 5 s) until the retry's job completes.
  await row.getByRole('button', { name: 'Retry' }).click();
  await page.waitForURL(`${base}/admin`);
  const retryJob = page.locator('#jobs tr', { hasText: 'media_reprocess' }).first();
  const deadline = Date.now() + 90000;
  for (;;) {
    const failures = await page.locator('#failures tr', { hasText: filename }).count();
    const jobText = (await retryJob.count()) ? await retryJob.innerText() : '';
    if (failures === 0 && jobText.includes('completed') && jobText.includes('1 done')) break;
    if (Date.now() > deadline) fail(`retry did not complete: failures=${failures} job=${jobText}`);
    await page.waitForEvent('load', { timeout: 10000 }).catch(() => {});
  }

  // The job's page: its file and steps.
  await retryJob.locator('a').click();
  const file = page.locator('#files tr', { hasText: filename });
  await file.waitFor();
  const fileText = await file.innerText();
  if (!fileText.includes('completed')) fail(`file not completed on the job page: ${fileText}`);
  for (const s of ['hash:succeeded', 'exif:succeeded', 'thumbnail:succeeded']) {
    if (!fileText.includes(s)) fail(`step ${s} missing: ${fileText}`);
  }
  await page.screenshot({ path: `${shots}/admin-job.png`, fullPage: true });

  // Sign out ends the session on the server: the same cookie, put back, signs no one in.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/admin/login`);
  if ((await context.cookies(`${base}/admin`)).some((c) => c.name === 'timeline_admin')) fail('cookie kept after sign-out');
  await context.addCookies([cookie]);
  await page.goto(`${base}/admin`);
  if (!page.url().endsWith('/admin/login')) fail(`a signed-out session still works: ${page.url()}`);
  console.log('dashboard ok');
} finally {
  await browser.close();
}
