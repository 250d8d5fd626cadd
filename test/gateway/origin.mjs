// The origin behind the gateway in tests: echoes what it received, fails on demand, and counts the
// requests of each test (by its x-test-id header) so tests can prove when it was (not) called.
const hits = new Map()
const pathHits = new Map()
// Streams whose reader went away, by test id.
const cancelled = new Map()
const encoder = new TextEncoder()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// An SSE body from a list of event texts, pushed `delayMs` apart whether or not anyone reads; a stream its reader
// cancelled (the gateway aborting the fetch) is counted under the test id and pushes no more.
function sse(id, events, delayMs = 0, signal) {
  let timer
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    clearInterval(timer)
    cancelled.set(id, (cancelled.get(id) ?? 0) + 1)
  }
  signal?.addEventListener('abort', stop)
  const body = new ReadableStream({
    start(controller) {
      let i = 0
      const push = () => {
        if (stopped) return
        if (i >= events.length) {
          clearInterval(timer)
          return controller.close()
        }
        try {
          controller.enqueue(encoder.encode(events[i++]))
        } catch {
          stop()
        }
      }
      if (delayMs === 0) {
        while (i < events.length) push()
        push()
      } else {
        push()
        timer = setInterval(push, delayMs)
      }
    },
    cancel: stop,
  })
  return new Response(body, { headers: { 'content-type': 'text/event-stream', 'x-origin': 'yes' } })
}

// An OpenAI-compatible completion: one content delta per word; usage from x-usage-input / x-usage-output (or counted).
async function llm(request, url, id) {
  const body = await request.json()
  const received = { body, headers: Object.fromEntries(request.headers) }
  const words = (url.searchParams.get('reply') ?? 'one two three four five').split(' ')
  const usage = {
    prompt_tokens: Number(request.headers.get('x-usage-input') ?? '7'),
    completion_tokens: Number(request.headers.get('x-usage-output') ?? String(words.length)),
  }
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
  const report = request.headers.get('x-no-usage') === null
  const responses = url.pathname.endsWith('/responses')
  const responsesUsage = { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens, total_tokens: usage.total_tokens }
  if (!body.stream) {
    if (responses) return Response.json({ object: 'response', output_text: words.join(' '), ...(report ? { usage: responsesUsage } : {}), received })
    return Response.json({ object: 'chat.completion', choices: [{ message: { role: 'assistant', content: words.join(' ') } }], ...(report ? { usage } : {}), received })
  }
  const events = [': origin stream\n\n']
  if (responses) {
    for (const w of words) events.push(`event: response.output_text.delta\ndata: ${JSON.stringify({ type: 'response.output_text.delta', delta: w + ' ' })}\n\n`)
    events.push(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: report ? { usage: responsesUsage } : {} })}\n\n`)
  } else {
    events.push(`data: ${JSON.stringify({ object: 'chat.completion.chunk', received, choices: [{ delta: { role: 'assistant' } }] })}\n\n`)
    for (const w of words) events.push(`data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ delta: { content: w + ' ' } }] })}\n\n`)
    if (report && body.stream_options?.include_usage) events.push(`data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [], usage })}\n\n`)
    events.push('data: [DONE]\n\n')
  }
  return sse(id, events, Number(url.searchParams.get('delay') ?? '0'), request.signal)
}

export default {
  async fetch(request) {
    const url = new URL(request.url)
    if (url.pathname === '/__hits') return Response.json({ hits: hits.get(url.searchParams.get('id')) ?? 0, cancelled: cancelled.get(url.searchParams.get('id')) ?? 0 })
    const id = request.headers.get('x-test-id') ?? ''
    const n = (hits.get(id) ?? 0) + 1
    hits.set(id, n)
    const key = `${id} ${url.pathname}`
    pathHits.set(key, (pathHits.get(key) ?? 0) + 1)
    if (url.pathname.startsWith('/llm/')) return llm(request, url, id)
    if (url.pathname.startsWith('/sse/')) {
      // n data events between a comment, a keep-alive and [DONE]; each event `delay` ms apart.
      const n = Number(url.searchParams.get('n') ?? '3')
      const events = [': hello\n\n', ...Array.from({ length: n }, (_, i) => `id: ${i}\ndata: event ${i}\n\n`), ':\n\n', 'data: [DONE]\n\n']
      return sse(id, events, Number(url.searchParams.get('delay') ?? '0'), request.signal)
    }
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
