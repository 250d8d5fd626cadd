/**
 * @module Per-token prices for OpenAI-compatible origins: the bound a request is reserved for before it is
 * forwarded, and the usage its response reports (chat completions, completions and responses; streamed or not).
 */

/** The OpenAI-compatible APIs the gateway meters by token, told apart by the request path. */
export type TokenApi = 'chat' | 'completions' | 'responses'

/** What a request is reserved for, and the body the origin receives. */
export type TokenBound = {
  api: TokenApi
  /** Input tokens reserved: the table's bound, or the body's size in bytes (an upper bound). */
  input: number
  /** Output tokens reserved: the request's own limit, or the table default (then also put into the body). */
  output: number
  streamed: boolean
  /** The body to forward. */
  body: string
}

/** Reported token usage. */
export type Usage = { input: number; output: number }

/** The field each API takes its output limit in, and the one the gateway writes a default into. */
const limitField: Record<TokenApi, string> = { chat: 'max_completion_tokens', completions: 'max_tokens', responses: 'max_output_tokens' }

/**
 * The API a request path names, or undefined.
 * @example
 * tokenApi('/v1/chat/completions') // 'chat'
 */
export function tokenApi(path: string): TokenApi | undefined {
  if (/\/chat\/completions\/?$/.test(path)) return 'chat'
  if (/\/completions\/?$/.test(path)) return 'completions'
  if (/\/responses\/?$/.test(path)) return 'responses'
  return undefined
}

/**
 * Reads a request body's token bound; answers an error text for a body that cannot be priced. A request that
 * names no output limit gets `maxOutputTokens` written in; a streamed chat completion (or completion) asks for
 * usage (`stream_options.include_usage`).
 * @example
 * const bound = tokenBound('chat', text, { maxOutputTokens: 512 })
 */
export function tokenBound(api: TokenApi, text: string, terms: { maxInputTokens?: number | undefined; maxOutputTokens: number }): TokenBound | { error: string } {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return { error: 'the request body must be a JSON object' }
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { error: 'the request body must be a JSON object' }
  const request = body as Record<string, unknown>
  let output: number | undefined
  for (const field of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const value = request[field]
    if (value === undefined || value === null) continue
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) return { error: `"${field}" must be a positive whole number` }
    output = output === undefined ? value : Math.max(output, value)
  }
  if (output === undefined) {
    output = terms.maxOutputTokens
    request[limitField[api]] = output
  }
  const streamed = request.stream === true
  if (streamed && api !== 'responses') {
    const options = request.stream_options
    if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) return { error: '"stream_options" must be an object' }
    request.stream_options = { ...(options as Record<string, unknown> | undefined), include_usage: true }
  }
  const input = terms.maxInputTokens ?? Math.max(1, new TextEncoder().encode(text).length)
  return { api, input, output, streamed, body: JSON.stringify(request) }
}

/**
 * The usage a response object reports (`usage.prompt_tokens`/`completion_tokens`, or `input_tokens`/`output_tokens`;
 * a responses stream's `response.completed` event holds it under `response`), or undefined.
 * @example
 * usageOf({ usage: { prompt_tokens: 12, completion_tokens: 40 } }) // { input: 12, output: 40 }
 */
export function usageOf(value: unknown): Usage | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const object = value as Record<string, unknown>
  const usage = (object.usage ?? (object.response as Record<string, unknown> | undefined)?.usage) as Record<string, unknown> | undefined | null
  if (typeof usage !== 'object' || usage === null) return undefined
  const input = usage.prompt_tokens ?? usage.input_tokens
  const output = usage.completion_tokens ?? usage.output_tokens
  if (!isCount(input) || !isCount(output)) return undefined
  return { input, output }
}

/**
 * Whether a streamed event carries generated content (one output token is counted per such event when a stream
 * ends before its usage arrived).
 * @example
 * isContentDelta({ choices: [{ delta: { content: 'Hi' } }] }) // true
 */
export function isContentDelta(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  const object = value as Record<string, unknown>
  if (object.type === 'response.output_text.delta') return typeof object.delta === 'string' && object.delta.length > 0
  const choices = object.choices
  if (!Array.isArray(choices)) return false
  return choices.some((choice: { delta?: { content?: unknown }; text?: unknown } | null) => {
    const content = choice?.delta?.content ?? choice?.text
    return typeof content === 'string' && content.length > 0
  })
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}
