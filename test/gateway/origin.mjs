// The origin behind the gateway in tests: echoes what it received, fails on demand, and counts the
// requests of each test (by its x-test-id header) so tests can prove when it was (not) called.
const hits = new Map()
const pathHits = new Map()

export default {
  async fetch(request) {
    const url = new URL(request.url)
    if (url.pathname === '/__hits') return Response.json({ hits: hits.get(url.searchParams.get('id')) ?? 0 })
    const id = request.headers.get('x-test-id') ?? ''
    const n = (hits.get(id) ?? 0) + 1
    hits.set(id, n)
    const key = `${id} ${url.pathname}`
    pathHits.set(key, (pathHits.get(key) ?? 0) + 1)
    if (url.pathname.startsWith('/fail-once') && pathHits.get(key) === 1) return new Response('origin is down', { status: 503 })
    if (url.pathname.startsWith('/down')) return new Response('origin is down', { status: 500 })
    if (url.pathname.startsWith('/missing')) return Response.json({ error: 'no such thing' }, { status: 404 })
    if (url.pathname.startsWith('/hang')) await new Promise((resolve) => setTimeout(resolve, 5_000))
    const body = ['GET', 'HEAD'].includes(request.method) ? '' : await request.text()
    return Response.json(
      { method: request.method, path: url.pathname, search: url.search, headers: Object.fromEntries(request.headers), body, hit: n },
      { headers: { 'x-origin': 'yes', 'cache-control': 'public, max-age=600', 'payment-receipt': 'forged-by-origin' } },
    )
  },
}
