/** @module The payment page a browser gets instead of the problem+json body of a 402. */
import * as Challenge from '../core/Challenge.js'

/** One way to pay, as the page lists it. */
export type PageOffer = { method: string; price: string; currency: string; amount: string }

/**
 * Whether an Accept header prefers HTML to problem+json: `text/html` must be listed explicitly and weigh
 * more than the JSON types (by the most specific matching range), as browsers ask and API clients do not.
 * @example
 * prefersHtml('text/html,application/xhtml+xml,*\/*;q=0.8') // true
 */
export function prefersHtml(accept: string | null): boolean {
  if (!accept || !/text\/html/i.test(accept)) return false
  const ranges = accept.split(',').map((item) => {
    const [type = '', ...params] = item.split(';').map((part) => part.trim().toLowerCase())
    const q = params.find((param) => param.startsWith('q='))
    return { type, q: q ? Number(q.slice(2)) || 0 : 1 }
  })
  const weight = (type: string) => {
    const [major] = type.split('/')
    const match = ranges.find((r) => r.type === type) ?? ranges.find((r) => r.type === `${major}/*`) ?? ranges.find((r) => r.type === '*/*')
    return match?.q ?? 0
  }
  const html = weight('text/html')
  return html > 0 && html > weight('application/problem+json') && html > weight('application/json')
}

/**
 * The 402 as an HTML page: same status and challenges, the price per method, what went wrong (if a
 * credential was refused) and how to pay. Everything shown is escaped; the page runs no script.
 * @example
 * return paymentPage(challengeResponse, { resource: 'GET /report', description: 'Daily report', offers })
 */
export async function paymentPage(
  response: Response,
  page: { resource: string; url: string; description?: string | undefined; offers: readonly PageOffer[] },
): Promise<Response> {
  const problem = (await response.json().catch(() => ({}))) as { title?: string; detail?: string; type?: string }
  let expires: string | undefined
  let header: Challenge.CredentialHeader = 'Authorization'
  try {
    const first = Challenge.fromResponse(response)[0]
    expires = first?.expires
    if (first) header = Challenge.credentialHeader(first)
  } catch {
    expires = undefined
  }
  const refused = problem.type && !problem.type.endsWith('/payment-required') ? `${problem.title ?? 'Payment refused'}${problem.detail ? `: ${problem.detail}` : ''}` : undefined
  const rows = page.offers
    .map((o) => `<tr><td>${esc(o.method)}</td><td class="num">${esc(o.price)}</td><td><code>${esc(o.currency)}</code></td><td class="num">${esc(o.amount)}</td></tr>`)
    .join('')
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Payment required</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d232a}
h1{font-size:1.6rem;margin-bottom:.2rem}.resource{color:#555;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.9em}td code{word-break:break-all}
.refused{background:#fdecea;border-left:4px solid #c62828;padding:.6rem .8rem}pre{background:#f4f5f7;padding:.6rem;overflow-x:auto}
</style></head><body>
<h1>Payment required</h1>
<p class="resource">${esc(page.resource)}${page.description ? ` — ${esc(page.description)}` : ''}</p>
${refused ? `<p class="refused" role="alert">${esc(refused)}</p>` : ''}
<p>This resource is paid per request. Any one of these offers pays for it:</p>
<table><thead><tr><th>Method</th><th class="num">Price</th><th>Currency</th><th class="num">Amount (base units)</th></tr></thead><tbody>${rows}</tbody></table>
<h2>How to pay</h2>
<ol>
<li>Use a client that supports the HTTP <code>Payment</code> authentication scheme (the Machine Payments Protocol).</li>
<li>It reads the <code>WWW-Authenticate: Payment</code> challenges of this response (one per offer), pays with one of the methods above, and sends the same request again with <code>${header}: Payment &lt;credential&gt;</code>.</li>
<li>The answer then carries a <code>Payment-Receipt</code>.${expires ? ` These challenges expire at ${esc(expires)}; after that, request the resource again for fresh ones.` : ''}</li>
</ol>
<p>See the challenges yourself:</p>
<pre>curl -i ${esc(shellQuote(page.url))}</pre>
<p>Machine-readable prices of every route: <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>`
  const headers = new Headers(response.headers)
  headers.set('content-type', 'text/html; charset=utf-8')
  headers.set('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
  headers.set('vary', 'Accept')
  headers.delete('content-length')
  return new Response(html, { status: response.status, headers })
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}
