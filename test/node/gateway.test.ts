/**
 * The gateway as a seller runs it: `npm run dev` (wrangler dev with the repository's configuration) in
 * front of an origin reached by URL over real HTTP, its payment page in headless Chromium, and
 * `wrangler deploy --dry-run` bundling it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import { freePort } from '../../src/testing/node/ports.js'
import { spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'

const chromiumPath = '/usr/bin/chromium'
const hasChromium = existsSync(chromiumPath)

type Seen = { method: string; url: string; headers: IncomingHttpHeaders; body: string }

describe('npm run dev', () => {
  let origin: Server
  let dev: ChildProcess
  let gateway: string
  let output = ''
  const seen: Seen[] = []
  const state = mkdtempSync(join(tmpdir(), 'mpp-dev-state-'))

  beforeAll(async () => {
    origin = createServer((req, res) => {
      let body = ''
      req.on('data', (chunk) => (body += chunk))
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body })
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ origin: true, url: req.url }))
      })
    })
    const originPort = await freePort()
    await new Promise<void>((resolve) => origin.listen(originPort, '127.0.0.1', resolve))
    const port = await freePort()
    gateway = `http://127.0.0.1:${port}`
    dev = spawn('npm', ['run', 'dev', '--', '--persist-to', state], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PORT: String(port),
        CI: '1',
        ORIGIN_URL: `http://127.0.0.1:${originPort}/base`,
        STRIPE_SECRET_KEY: testSecretKey,
        STRIPE_API_BASE: `http://127.0.0.1:${process.env.MPP_TEST_STRIPE_PORT}`,
        TEMPO_RPC_URL: `http://127.0.0.1:${process.env.MPP_TEST_ANVIL_PORT}`,
      },
    })
    dev.stdout!.on('data', (chunk) => (output += chunk))
    dev.stderr!.on('data', (chunk) => (output += chunk))
    const deadline = Date.now() + 50_000
    for (;;) {
      if (dev.exitCode !== null) throw new Error(`npm run dev exited:\n${output}`)
      const ok = await fetch(`${gateway}/__mpp/health`).then((r) => r.ok, () => false)
      if (ok) break
      if (Date.now() > deadline) throw new Error(`npm run dev did not start:\n${output}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  })

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null) {
      const exited = new Promise((resolve) => dev.once('exit', resolve))
      process.kill(-dev.pid, 'SIGTERM')
      await exited
    }
    await new Promise((resolve) => origin?.close(resolve))
    rmSync(state, { recursive: true, force: true })
  })

  it('behavior: serves the gateway on the chosen port and forwards unpriced requests to ORIGIN_URL, keeping its path', async () => {
    const health = await fetch(`${gateway}/__mpp/health`)
    expect(await health.json()).toMatchObject({ status: 'ok', methods: ['tempo', 'stripe'] })
    const res = await fetch(`${gateway}/v1/status?x=1`, { headers: { 'x-custom': 'kept' } })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ origin: true, url: '/base/v1/status?x=1' })
    expect(seen.at(-1)!.headers['x-custom']).toBe('kept')
  })

  it('behavior: a Stripe payment over HTTP reaches the origin once, without the credential', async () => {
    const init = { method: 'POST', body: '{"format":"json"}', headers: { 'content-type': 'application/json' } }
    const before = seen.length
    const offered = await fetch(`${gateway}/v1/exports`, init)
    expect(offered.status).toBe(402)
    expect(seen.length).toBe(before)
    const challenge = Challenge.fromResponse(offered).find((c) => c.method === 'stripe')!
    const authorization = Credential.serialize({ challenge, payload: { spt: spt('ok') } })
    const paid = await fetch(`${gateway}/v1/exports`, { ...init, headers: { ...init.headers, authorization } })
    expect(paid.status).toBe(200)
    expect(Receipt.deserialize(paid.headers.get('payment-receipt')!)).toMatchObject({ method: 'stripe', challengeId: challenge.id })
    expect(seen.length).toBe(before + 1)
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/base/v1/exports', body: '{"format":"json"}' })
    expect(seen.at(-1)!.headers.authorization).toBeUndefined()
  })

  it.skipIf(!hasChromium)('behavior: a browser gets a readable payment page (headless Chromium, Debian package "chromium")', async () => {
    const { chromium } = await import('playwright-core')
    const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] })
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 900 } })
      const response = await page.goto(`${gateway}/v1/reports/42`)
      expect(response!.status()).toBe(402)
      const text = await page.locator('body').innerText()
      expect(text).toContain('Payment required')
      expect(text).toContain('GET /v1/reports/42 — One report')
      expect(text).toMatch(/tempo\s+0\.01\s+pathUSD\s+10000/)
      expect(text).toContain('How to pay')
      expect(text).toContain('Authorization: Payment <credential>')
      expect(await page.locator('table tbody tr').count()).toBe(1)
      mkdirSync('test-results', { recursive: true })
      const shot = 'test-results/gateway-payment-page.png'
      await page.screenshot({ path: shot, fullPage: true })
      expect(statSync(shot).size).toBeGreaterThan(5_000)
    } finally {
      await browser.close()
    }
  })
})

if (!hasChromium) console.warn(`The payment page browser test is skipped: ${chromiumPath} is missing (apt-get install chromium).`)

// The deployable gateway, every method included, minified and gzipped as Cloudflare stores it. A size, not a
// timing. The budget may be raised to at most 120 KiB, with the reason in the commit that raises it.
const bundleBudgetGzipKiB = 120

describe('wrangler deploy --dry-run', () => {
  it('behavior: bundles the gateway with its pricing table and Durable Objects, within the size budget', async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'mpp-deploy-'))
    try {
      const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn('npx', ['wrangler', 'deploy', '--dry-run', '--minify', '--outdir', outdir], {
          env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
        })
        let output = ''
        child.stdout.on('data', (chunk) => (output += chunk))
        child.stderr.on('data', (chunk) => (output += chunk))
        child.on('exit', (code) => resolve({ code, output }))
      })
      expect(code, output).toBe(0)
      expect(output).toMatch(/Total Upload/)
      expect(output).toMatch(/REPLAY_GUARD[\s\S]*IDEMPOTENCY_CACHE[\s\S]*RATE_COUNTER/)
      // The default rate limits are Cloudflare's rate limiting bindings (a 402 touches no storage).
      expect(output).toMatch(/CHALLENGE_RATE_LIMITER[\s\S]*VERIFY_RATE_LIMITER/)
      const modules = readdirSync(outdir).filter((name) => name.endsWith('.js'))
      const bundle = Buffer.concat(modules.map((name) => readFileSync(join(outdir, name))))
      expect(bundle.length).toBeGreaterThan(10_000)
      const gzipKiB = gzipSync(bundle).length / 1024
      console.log(`gateway bundle ${(bundle.length / 1024).toFixed(1)} KiB, ${gzipKiB.toFixed(1)} KiB gzip (budget ${bundleBudgetGzipKiB} KiB)`)
      expect(gzipKiB, 'gzip size of the minified gateway bundle in KiB').toBeLessThanOrEqual(bundleBudgetGzipKiB)
    } finally {
      rmSync(outdir, { recursive: true, force: true })
    }
  })
})
