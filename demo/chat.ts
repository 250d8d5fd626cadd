/**
 * @module The demo origin's LLM-like endpoint: `POST /v1/chat/completions` in the OpenAI-compatible shape, streamed
 * as server-sent events (`stream: true`) or answered whole, with `usage`. The "model" writes a short canned reply
 * word by word; a token is one word of the reply, and input tokens are estimated at four characters each.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import * as v from 'valibot'

const Message = v.object({ role: v.string(), content: v.union([v.string(), v.array(v.unknown()), v.null()]) })
const ChatRequest = v.looseObject({
  model: v.optional(v.string(), 'mpp-edge-demo-1'),
  messages: v.pipe(v.array(Message), v.minLength(1), v.maxLength(64)),
  stream: v.optional(v.boolean(), false),
  stream_options: v.optional(v.looseObject({ include_usage: v.optional(v.boolean()) })),
  max_tokens: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  max_completion_tokens: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
})

/** Tokens a reply has when the request sets no limit. */
const defaultMaxTokens = 256
/** Delay between streamed tokens, so a stream is visibly a stream. */
const tokenDelayMs = 25

/**
 * Answers a chat completion request whose body has been read.
 * @example
 * if (req.method === 'POST' && path === '/v1/chat/completions') return chatCompletion(req, res, body)
 */
export function chatCompletion(req: IncomingMessage, res: ServerResponse, body: string): void {
  let parsed: v.InferOutput<typeof ChatRequest>
  try {
    parsed = v.parse(ChatRequest, JSON.parse(body))
  } catch {
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { type: 'invalid_request_error', message: 'the body must be a chat completion request with messages' } }))
    return
  }
  const prompt = parsed.messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? ''))).join('\n')
  const limit = parsed.max_completion_tokens ?? parsed.max_tokens ?? defaultMaxTokens
  const words = reply(prompt).split(' ')
  const tokens = words.slice(0, limit).map((word, i) => (i === 0 ? word : ` ${word}`))
  const finish = tokens.length < words.length ? 'length' : 'stop'
  const usage = { prompt_tokens: Math.ceil(prompt.length / 4), completion_tokens: tokens.length, total_tokens: Math.ceil(prompt.length / 4) + tokens.length }
  const id = `chatcmpl-${randomBytes(12).toString('hex')}`
  const created = Math.floor(Date.now() / 1000)
  const base = { id, created, model: parsed.model }

  if (!parsed.stream) {
    const message = { role: 'assistant', content: tokens.join('') }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message, finish_reason: finish }], usage }))
    return
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices, ...extra })}\n\n`)
  chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])
  let next = 0
  const timer = setInterval(() => {
    if (next < tokens.length) {
      chunk([{ index: 0, delta: { content: tokens[next++] }, finish_reason: null }])
      return
    }
    clearInterval(timer)
    chunk([{ index: 0, delta: {}, finish_reason: finish }])
    // The usage chunk comes last and has no choices (OpenAI "stream_options.include_usage").
    if (parsed.stream_options?.include_usage) chunk([], { usage })
    res.end('data: [DONE]\n\n')
  }, tokenDelayMs)
  // A client that goes away stops the generation.
  req.socket.once('close', () => clearInterval(timer))
  res.once('close', () => clearInterval(timer))
}

function reply(prompt: string): string {
  const topic = prompt.replace(/\s+/g, ' ').trim().slice(0, 60) || 'nothing in particular'
  return (
    `You asked about "${topic}". This answer comes from the mpp-edge demo origin, one token at a time, ` +
    'and each token you read here was paid for with a signed voucher on a payment channel: the channel holds your ' +
    'deposit on chain, every voucher raises what the seller may claim, and closing the channel pays the seller what ' +
    'was used and returns the rest of the deposit to you. No transaction is sent per token, only one to open the ' +
    'channel and one to close it.'
  )
}
