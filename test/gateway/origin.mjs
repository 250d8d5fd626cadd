// The origin behind the gateway in tests: echoes what it received, fails on demand, and counts the
// requests of each test (by its x-test-id header) so tests can prove when it was (not) called. A request naming a
// framework (x-framework) is answered with the route that framework reads it as (frameworks.mjs).
import { frameworkRoute } from './frameworks.mjs'

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

// An OpenAI-compatible origin (chat completions, completions, responses). It reads the output limit each API honours
// (chat: max_completion_tokens or max_tokens; completions: max_tokens; responses: max_output_tokens) and writes at
// most that many words per choice; n, best_of and a completions prompt list multiply the choices generated. The reply
// is `?reply=` (one token per word); `?kind=` streams it as content (default), tool-call arguments, reasoning,
// refusals or audio. Usage: x-usage-input / x-usage-output, else 7 in and the words generated out.
async function llm(request, url, id) {
  const body = await request.json()
  const received = { body, headers: Object.fromEntries(request.headers) }
  const api = url.pathname.endsWith('/responses') ? 'responses' : url.pathname.endsWith('/chat/completions') ? 'chat' : 'completions'
  const limit = api === 'chat' ? (body.max_completion_tokens ?? body.max_tokens) : api === 'responses' ? body.max_output_tokens : body.max_tokens
  const all = (url.searchParams.get('reply') ?? 'one two three four five').split(' ')
  const words = typeof limit === 'number' ? all.slice(0, limit) : all
  const prompts = api === 'completions' && Array.isArray(body.prompt) && typeof body.prompt[0] !== 'number' ? body.prompt.length : 1
  const choices = prompts * (body.n ?? 1)
  const generated = prompts * Math.max(body.n ?? 1, body.best_of ?? 1)
  const kind = url.searchParams.get('kind') ?? 'content'
  const usage = {
    prompt_tokens: Number(request.headers.get('x-usage-input') ?? '7'),
    completion_tokens: Number(request.headers.get('x-usage-output') ?? String(words.length * generated)),
  }
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
  const report = request.headers.get('x-no-usage') === null
  const responsesUsage = { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens, total_tokens: usage.total_tokens }
  const indexes = Array.from({ length: choices }, (_, i) => i)
  if (!body.stream) {
    if (api === 'responses') return Response.json({ object: 'response', output_text: words.join(' '), ...(report ? { usage: responsesUsage } : {}), received })
    if (api === 'completions') return Response.json({ object: 'text_completion', choices: indexes.map((index) => ({ index, text: words.join(' ') })), ...(report ? { usage } : {}), received })
    return Response.json({ object: 'chat.completion', choices: indexes.map((index) => ({ index, message: { role: 'assistant', content: words.join(' ') } })), ...(report ? { usage } : {}), received })
  }
  const events = [': origin stream\n\n']
  const data = (value, event) => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(value)}\n\n`
  if (api === 'responses') {
    const type = { content: 'response.output_text.delta', tool: 'response.function_call_arguments.delta', reasoning: 'response.reasoning_text.delta', refusal: 'response.refusal.delta', audio: 'response.audio.delta' }[kind]
    events.push(data({ type: 'response.created', response: { received } }, 'response.created'))
    for (const w of words) events.push(data({ type, delta: kind === 'audio' ? btoa(w) : w + ' ' }, type))
    events.push(data({ type: 'response.completed', response: report ? { usage: responsesUsage } : {} }, 'response.completed'))
  } else if (api === 'completions') {
    events.push(data({ object: 'text_completion', received, choices: [] }))
    for (const w of words) for (const index of indexes) events.push(data({ object: 'text_completion', choices: [{ index, text: w + ' ' }] }))
    if (report && body.stream_options?.include_usage) events.push(data({ object: 'text_completion', choices: [], usage }))
    events.push('data: [DONE]\n\n')
  } else {
    const delta = (w) =>
      ({
        content: { content: w + ' ' },
        tool: { tool_calls: [{ index: 0, function: { arguments: w } }] },
        reasoning: { reasoning_content: w + ' ' },
        refusal: { refusal: w + ' ' },
        audio: { audio: { transcript: w + ' ' } },
      })[kind]
    // ?kind=message: chunks carrying whole message objects instead of deltas, as some compatible servers stream.
    const choice = (index, w) => (kind === 'message' ? { index, message: { content: w + ' ' } } : { index, delta: delta(w) })
    events.push(data({ object: 'chat.completion.chunk', received, choices: indexes.map((index) => ({ index, delta: { role: 'assistant' } })) }))
    for (const w of words) for (const index of indexes) events.push(data({ object: 'chat.completion.chunk', choices: [choice(index, w)] }))
    if (report && body.stream_options?.include_usage) events.push(data({ object: 'chat.completion.chunk', choices: [], usage }))
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
    const routed = await frameworkRoute(request, url)
    if (routed) return Response.json({ ...routed, hit: n })
    if (url.pathname.startsWith('/llm/')) return llm(request, url, id)
    if (url.pathname.startsWith('/sse/')) {
      // n data events between a comment, a keep-alive and [DONE]; each event `delay` ms apart.
      const n = Number(url.searchParams.get('n') ?? '3')
      // ?json=1 answers the events as one JSON body instead; ?sep= ends each event with another blank line of the SSE spec.
      if (url.searchParams.get('json')) return Response.json({ events: Array.from({ length: n }, (_, i) => `event ${i}`) })
      const sep = { lf: '\n\n', lfcr: '\n\r', crlfcr: '\r\n\r', cr: '\r\r', crlf: '\r\n\r\n' }[url.searchParams.get('sep') ?? 'lf']
      const events = [`: hello${sep}`, ...Array.from({ length: n }, (_, i) => `id: ${i}\ndata: event ${i}${sep}`), `:${sep}`, `data: [DONE]${sep}`]
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
