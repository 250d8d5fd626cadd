/**
 * @module The demo origin: a small HTTP API the demo gateway sits in front of. It knows nothing of payments;
 * the gateway only forwards requests here once they are paid (or free). `POST /v1/chat/completions` streams like an
 * LLM API (demo/chat.ts).
 */
import { type Server, createServer } from 'node:http'
import { listen } from '../src/testing/node/ports.js'
import { chatCompletion } from './chat.js'

/** A running origin. */
export type Origin = { url: string; stop: () => Promise<void> }

/**
 * Starts the origin on a loopback port (0 = any free one).
 * @example
 * const origin = await startOrigin({ port: 0 })
 */
export async function startOrigin(options: { port: number }): Promise<Origin> {
  const server: Server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://origin')
      if (req.method === 'POST' && url.pathname === '/v1/chat/completions') return chatCompletion(req, res, body)
      const [status, payload] = answer(req.method ?? 'GET', url.pathname, body)
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload))
    })
  })
  return listen(server, options.port)
}

function answer(method: string, path: string, body: string): [number, unknown] {
  if (method === 'GET' && path === '/v1/status') return [200, { status: 'ok', service: 'mpp-edge demo origin' }]
  const quote = /^\/v1\/quotes\/([A-Za-z0-9.]{1,12})$/.exec(path)
  if (method === 'GET' && quote) {
    const symbol = quote[1]!.toUpperCase()
    // A made-up but stable price per symbol.
    const cents = [...symbol].reduce((sum, char) => sum * 31 + char.charCodeAt(0), 7) % 90_000
    return [200, { symbol, price: (1000 + cents / 100).toFixed(2), currency: 'USD' }]
  }
  if (method === 'GET' && path === '/v1/reports/daily') {
    return [200, { report: 'daily', date: new Date().toISOString().slice(0, 10), requests: 1284, revenue: '31.40 USD' }]
  }
  if (method === 'POST' && path === '/v1/summarize') {
    const words = body.split(/\s+/).filter(Boolean)
    return [200, { words: words.length, summary: words.slice(0, 12).join(' ') + (words.length > 12 ? ' …' : '') }]
  }
  if (method === 'GET' && path === '/v1/hello') return [200, { hello: 'a payer who signed for this request' }]
  return [404, { error: 'not found', path }]
}
