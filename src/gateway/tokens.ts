/**
 * @module Per-token prices for OpenAI-compatible origins: the bound a request is reserved for before it is
 * forwarded, the fields that would let it make the origin do more than that bound (refused), the usage its response
 * reports, and an upper bound of the tokens a streamed event carries (chat completions, completions and responses).
 */

/** The OpenAI-compatible APIs the gateway meters by token, told apart by the request path. */
export type TokenApi = 'chat' | 'completions' | 'responses'

/** A route's per-token bounds, from its pricing-table entry. */
export type TokenTerms = {
  /** The most input tokens a forwarded request may hold (by its upper bound, one token per byte). */
  maxInputTokens?: number | undefined
  /** The output limit of a request that names none; written into it. */
  maxOutputTokens: number
  /** Top-level request fields the operator lets through beyond the ones the gateway bounds. */
  allowFields?: readonly string[] | undefined
}

/** What a request is reserved for, and the body the origin receives. */
export type TokenBound = {
  api: TokenApi
  /** Input tokens reserved: the forwarded body's size in bytes (a byte-level BPE token covers at least one byte). */
  input: number
  /** Output tokens reserved: the output limit times the completions it asks for (`n`, `best_of`, a list of prompts). */
  output: number
  streamed: boolean
  /** The body to forward. */
  body: string
}

/** Why a request cannot be forwarded: `too-large` when its input may exceed `maxInputTokens`. */
export type TokenRefusal = { error: string; tooLarge?: true | undefined }

/** Reported token usage. */
export type Usage = { input: number; output: number }

/** The output limit fields each API honours (OpenAI API reference); the first is written when a request names none. */
const limitFields: Record<TokenApi, readonly string[]> = {
  chat: ['max_completion_tokens', 'max_tokens'],
  completions: ['max_tokens'],
  responses: ['max_output_tokens'],
}

/**
 * The top-level fields forwarded on each API: the input the body carries, the output limit and the fields that
 * shape generation without making it longer or dearer than the limit. Anything else (another API's limit field,
 * stored prompts, responses and conversations, hosted tools, audio output, service tiers, vendor extensions) could
 * make the origin do more than the reserve, so it is refused unless the operator allows it.
 */
const forwarded: Record<TokenApi, ReadonlySet<string>> = {
  chat: new Set([
    'model', 'messages', 'max_completion_tokens', 'max_tokens', 'n', 'stream', 'stream_options', 'tools', 'tool_choice', 'parallel_tool_calls',
    'functions', 'function_call', 'response_format', 'temperature', 'top_p', 'frequency_penalty', 'presence_penalty', 'logit_bias', 'logprobs',
    'top_logprobs', 'seed', 'stop', 'reasoning_effort', 'verbosity', 'store', 'metadata', 'user', 'safety_identifier', 'prompt_cache_key', 'prompt_cache_retention',
  ]),
  completions: new Set([
    'model', 'prompt', 'suffix', 'echo', 'max_tokens', 'n', 'best_of', 'stream', 'stream_options', 'temperature', 'top_p', 'frequency_penalty',
    'presence_penalty', 'logit_bias', 'logprobs', 'seed', 'stop', 'user',
  ]),
  responses: new Set([
    'model', 'input', 'instructions', 'max_output_tokens', 'stream', 'stream_options', 'tools', 'tool_choice', 'parallel_tool_calls', 'text', 'reasoning',
    'include', 'temperature', 'top_p', 'top_logprobs', 'truncation', 'store', 'metadata', 'user', 'safety_identifier', 'prompt_cache_key', 'prompt_cache_retention',
  ]),
}

/**
 * The fields the gateway reads itself, which `allowFields` cannot name.
 * @example
 * readFields.has('max_tokens') // true
 */
export const readFields: ReadonlySet<string> = new Set(['max_completion_tokens', 'max_tokens', 'max_output_tokens', 'n', 'best_of', 'stream', 'stream_options', 'messages', 'input', 'instructions', 'prompt', 'tools'])

/** Why a field the gateway knows is refused (the default reason covers the rest). */
const refusedBecause: Record<string, string> = {
  previous_response_id: 'pulls in a stored response as input',
  conversation: 'pulls in a stored conversation as input',
  prompt: 'pulls in a stored prompt as input',
  background: 'runs the response after this request has ended',
  web_search_options: 'runs a web search',
  prediction: 'is billed outside the output limit',
  audio: 'asks for audio output, priced apart from text tokens',
  modalities: 'may ask for audio output, priced apart from text tokens',
  service_tier: 'may be billed at another rate than the route’s',
}

/** Content parts whose tokens are the text they carry. */
const textParts = new Set(['text', 'input_text', 'output_text', 'refusal'])

/** Tool types the model calls back through the client; hosted ones run at the origin at a cost of their own. */
const clientTools = new Set(['function', 'custom'])

/** Responses input items made of text the body carries. */
const textItems = new Set(['message', 'function_call', 'function_call_output', 'custom_tool_call', 'custom_tool_call_output'])

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
 * Reads a request body's token bound, or why it cannot be forwarded. The output limit is read from the field the
 * API honours only (a request naming another API's field, or two that disagree, is refused) and written into that
 * field when the request names none; a streamed chat completion or completion asks for usage
 * (`stream_options.include_usage`). The input bound is the forwarded body's size in bytes: every input token is
 * text the body carries (input it does not carry is refused), a byte-level BPE token covers at least one byte, and
 * the JSON around each message outweighs the tokens a chat template adds to it.
 * @example
 * const bound = tokenBound('chat', text, { maxOutputTokens: 512 })
 */
export function tokenBound(api: TokenApi, text: string, terms: TokenTerms): TokenBound | TokenRefusal {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return { error: 'the request body must be a JSON object' }
  }
  if (!isObject(body)) return { error: 'the request body must be a JSON object' }
  const request = body
  const allowed = new Set(terms.allowFields ?? [])
  for (const field of Object.keys(request)) {
    if (forwarded[api].has(field) || (allowed.has(field) && !readFields.has(field))) continue
    if (!limitFields[api].includes(field) && field.startsWith('max_') && field.endsWith('_tokens')) {
      return { error: `"${field}" is not an output limit of this API, so the origin would not be bound by it; use "${limitFields[api].join('" or "')}"` }
    }
    return { error: `"${field}" is not forwarded on a per-token route: it ${refusedBecause[field] ?? 'could make the origin do more than the reserve covers'}` }
  }
  const refused = api === 'chat' ? chatInput(request) : api === 'responses' ? responsesInput(request) : undefined
  if (refused) return { error: refused }

  const named = limitFields[api].filter((field) => request[field] !== undefined && request[field] !== null)
  if (named.length > 1) return { error: `"${named.join('" and "')}" are both set; name one output limit` }
  for (const field of ['n', 'best_of', ...named]) {
    const value = request[field]
    if (value !== undefined && value !== null && !(typeof value === 'number' && Number.isSafeInteger(value) && value >= 1)) return { error: `"${field}" must be a positive whole number` }
  }
  const field = named[0] ?? limitFields[api][0]!
  const limit = named.length > 0 ? (request[field] as number) : terms.maxOutputTokens
  request[field] = limit
  // Each choice (and, for completions, each prompt of a list, and each of `best_of` candidates) is generated up to the limit.
  const prompts = api === 'completions' && Array.isArray(request.prompt) && request.prompt.length > 0 && typeof request.prompt[0] !== 'number' ? request.prompt.length : 1
  const choices = prompts * Math.max(count(request.n), count(request.best_of))
  const output = limit * choices

  if (request.stream !== undefined && typeof request.stream !== 'boolean') return { error: '"stream" must be true or false' }
  const streamed = request.stream === true
  const options = request.stream_options
  if (options !== undefined && options !== null && !isObject(options)) return { error: '"stream_options" must be an object' }
  if (streamed && api !== 'responses') request.stream_options = { ...(options ?? {}), include_usage: true }
  const forward = JSON.stringify(request)
  const input = new TextEncoder().encode(forward).length
  if (!Number.isSafeInteger(input + output)) return { error: 'the output limit times the completions asked for is too large' }
  if (terms.maxInputTokens !== undefined && input > terms.maxInputTokens) {
    return { error: `this request may hold up to ${input} input tokens (one per byte of the body as forwarded), above the route's maxInputTokens of ${terms.maxInputTokens}`, tooLarge: true }
  }
  return { api, input, output, streamed, body: forward }
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
 * An upper bound of the output tokens one streamed event carries: for each choice it updates (chat completions,
 * completions), the bytes of the text generated into it (content, tool-call arguments, reasoning, refusals, audio,
 * whatever shape carries them), at least one; for a responses event, the bytes of a `*.delta` event's delta, at least one. A token covers at least
 * one byte, so this never counts fewer tokens than the event holds.
 * @example
 * generatedTokens({ choices: [{ delta: { content: 'Hi' } }] }) // 2
 */
export function generatedTokens(value: unknown): number {
  if (!isObject(value)) return 0
  if (typeof value.type === 'string') return value.type.endsWith('.delta') ? Math.max(1, textBytes(value.delta)) : 0
  if (!Array.isArray(value.choices)) return 0
  let tokens = 0
  // Every string of a choice but its bookkeeping: a delta, a completion's text, or a whole message some servers stream.
  for (const choice of value.choices) if (isObject(choice)) tokens += Math.max(1, textBytes(choice))
  return tokens
}

/** The request's own messages: text only (an image, audio or file part, or audio referred to by id, is refused). */
function chatInput(request: Record<string, unknown>): string | undefined {
  const messages = request.messages
  if (messages !== undefined && !Array.isArray(messages)) return '"messages" must be a list'
  for (const [i, message] of (messages ?? []).entries()) {
    if (!isObject(message)) return `"messages[${i}]" must be an object`
    if (message.audio !== undefined && message.audio !== null) return `"messages[${i}].audio" refers to earlier audio, input the request's size does not bound`
    const refused = parts(message.content, `messages[${i}].content`)
    if (refused) return refused
  }
  return tools(request.tools)
}

/** The request's own input items: text only (no images, files, references to stored items, hosted tools). */
function responsesInput(request: Record<string, unknown>): string | undefined {
  for (const field of ['input', 'instructions']) {
    const items = request[field]
    if (items === undefined || items === null || typeof items === 'string') continue
    if (!Array.isArray(items)) return `"${field}" must be a string or a list of input items`
    for (const [i, item] of items.entries()) {
      if (!isObject(item)) return `"${field}[${i}]" must be an object`
      const type = item.type ?? 'message'
      if (typeof type !== 'string' || !textItems.has(type)) return `"${field}[${i}]" is a "${String(type)}" item, input the request's size does not bound`
      const refused = parts(item.content, `${field}[${i}].content`) ?? parts(item.output, `${field}[${i}].output`)
      if (refused) return refused
    }
  }
  return tools(request.tools)
}

function parts(content: unknown, where: string): string | undefined {
  if (content === undefined || content === null || typeof content === 'string') return undefined
  if (!Array.isArray(content)) return `"${where}" must be a string or a list of content parts`
  for (const [i, part] of content.entries()) {
    const type = isObject(part) ? part.type : undefined
    if (typeof type !== 'string' || !textParts.has(type)) return `"${where}[${i}]" is "${String(type)}", input the request's size does not bound (only text parts are forwarded)`
  }
  return undefined
}

function tools(list: unknown): string | undefined {
  if (list === undefined || list === null) return undefined
  if (!Array.isArray(list)) return '"tools" must be a list'
  for (const [i, tool] of list.entries()) {
    const type = isObject(tool) ? tool.type : undefined
    if (typeof type !== 'string' || !clientTools.has(type)) return `"tools[${i}]" is a "${String(type)}" tool, which runs at the origin at a cost the reserve does not bound`
  }
  return undefined
}

/** Keys of a streamed choice that hold no generated text. */
const bookkeeping = new Set(['role', 'finish_reason', 'logprobs'])

/** UTF-8 bytes of the strings in a value, bookkeeping keys left out. */
function textBytes(value: unknown): number {
  if (typeof value === 'string') return new TextEncoder().encode(value).length
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + textBytes(item), 0)
  if (!isObject(value)) return 0
  let sum = 0
  for (const [key, item] of Object.entries(value)) if (!bookkeeping.has(key)) sum += textBytes(item)
  return sum
}

function count(value: unknown): number {
  return typeof value === 'number' ? value : 1
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}
