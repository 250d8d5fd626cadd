/**
 * @module A local HTTP server speaking Stripe's documented API for `POST /v1/payment_intents`,
 * `GET /v1/payment_intents/{id}`, `GET /v1/payment_intents/search` (metadata queries) and
 * `GET /v1/shared_payment/granted_tokens/{id}`, for tests that cannot reach Stripe: bearer or basic auth, form-encoded
 * bodies, `Stripe-Version`, `Stripe-Account` (a PaymentIntent made on a connected account is found only with
 * that header), Stripe's error object, and idempotency as Stripe API v1 documents it (the first result for a
 * key is saved once execution begins and replayed with `Idempotent-Replayed: true`, as it was then; other
 * parameters under the same key are a 400 idempotency_error; a key whose first request is still running is a
 * 409; rate limiting and validation come before that layer and save nothing). The token chooses the outcome
 * (see stripe-fixtures.ts). Every request is recorded, and `GET /__test/requests?token=…|idempotencyKey=…[&settled=1]`
 * lists them for tests in other processes (a retrieve is listed under the token that created the PaymentIntent).
 * `POST /__test/resolve?token=…&status=succeeded|requires_payment_method` ends a `processing` PaymentIntent the
 * way the payment network eventually does. A test double: it moves no money, and nothing in production may
 * point at it.
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http'
import { listen } from './ports.js'
import { type Outcome, type RecordedRequest, outcomes, processingRetrieves, testSecretKey } from '../stripe-fixtures.js'

type Saved = { fingerprint: string; state: 'running' | 'done'; status: number; body: string }
type Answer = { status: number; body: unknown; headers?: Record<string, string> }
type Intent = { id: string; status: string; amount: number; amount_received: number; payment_method: string | null; last_payment_error: unknown }
/** A PaymentIntent Stripe holds: its current state, the account it lives on, and how often it was retrieved. */
type Stored = { intent: Intent; account: string; token: string; outcome: Outcome; retrieves: number }

const knownParams = /^(amount|currency|confirm|shared_payment_granted_token|automatic_payment_methods\[(enabled|allow_redirects)\]|metadata\[[^[\]]+\]|application_fee_amount|on_behalf_of|transfer_data\[(destination|amount)\]|transfer_group|description)$/

/** A running local Stripe API. */
export type StripeApi = { url: string; requests: RecordedRequest[]; stop: () => Promise<void> }

/**
 * Starts the server on 127.0.0.1.
 * @example
 * const api = await startStripeApi({ port: 0 })
 */
export async function startStripeApi(options: { port: number; slowMs?: number }): Promise<StripeApi> {
  const slowMs = options.slowMs ?? 1500
  const requests: RecordedRequest[] = []
  const saved = new Map<string, Saved>()
  const consumed = new Set<string>()
  const flakySeen = new Set<string>()
  const intents = new Map<string, Stored>()
  const firstSeen = new Map<string, number>()
  let counter = 0
  const id = (prefix: string) => `${prefix}_${(++counter).toString(36).padStart(6, '0')}${Math.random().toString(36).slice(2, 14)}`

  async function paymentIntents(record: RecordedRequest): Promise<Answer> {
    const unauthorized = authenticate(record)
    if (unauthorized) return unauthorized
    const outcome = outcomeOf(record.token)
    // The rate limiter runs before the idempotency layer (Stripe "Advanced error handling").
    if (outcome === 'ratelimited') {
      return { ...error(429, { type: 'invalid_request_error', code: 'rate_limit', message: 'Request rate limit exceeded.' }), headers: { 'retry-after': '3' } }
    }
    if (!record.contentType?.startsWith('application/x-www-form-urlencoded')) {
      return error(400, { type: 'invalid_request_error', message: 'Invalid request: the body must be application/x-www-form-urlencoded.' })
    }
    const badVersion = checkVersion(record)
    if (badVersion) return badVersion
    const invalid = validate(record)
    if (invalid) return invalid

    const key = record.idempotencyKey !== undefined ? `${record.apiKey}|${record.stripeAccount ?? ''}|${record.idempotencyKey}` : undefined
    const fingerprint = JSON.stringify(Object.entries(record.params).sort(([a], [b]) => a.localeCompare(b)))
    const previous = key !== undefined ? saved.get(key) : undefined
    if (previous?.state === 'running') {
      return error(409, { type: 'invalid_request_error', code: 'idempotency_key_in_use', message: 'There is currently another in-progress request using this idempotency key. Try again later.' })
    }
    if (previous) {
      if (previous.fingerprint !== fingerprint) {
        return error(400, {
          type: 'idempotency_error',
          message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${record.idempotencyKey}' if you meant to execute a different request.`,
        })
      }
      return { status: previous.status, body: JSON.parse(previous.body), headers: { 'idempotent-replayed': 'true' } }
    }
    if (outcome === 'flaky' && !flakySeen.has(record.token!)) {
      // Failed before the endpoint began executing: nothing is saved, a retry with the same key runs afresh.
      flakySeen.add(record.token!)
      return { ...error(503, { type: 'api_error', message: 'The service is temporarily unavailable. Please try again.' }), headers: { 'stripe-should-retry': 'true' } }
    }
    const entry: Saved | undefined = key !== undefined ? { fingerprint, state: 'running', status: 0, body: '' } : undefined
    if (key !== undefined && entry) saved.set(key, entry)
    const answer = await execute(record, outcome)
    if (key !== undefined && entry) {
      entry.state = 'done'
      entry.status = answer.status
      entry.body = JSON.stringify(answer.body)
    }
    return answer
  }

  async function execute(record: RecordedRequest, outcome: Outcome): Promise<Answer> {
    const token = record.token!
    const p = record.params
    if (outcome === 'error') return error(500, { type: 'api_error', message: 'An unknown error occurred.' })
    if (outcome === 'unknown') {
      return error(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'shared_payment_granted_token', message: `No such shared_payment_granted_token: '${token}'` })
    }
    if (outcome === 'expired') {
      return error(400, { type: 'invalid_request_error', param: 'shared_payment_granted_token', message: 'This SharedPaymentGrantedToken has expired and can no longer be used.' })
    }
    if (consumed.has(token)) {
      return error(400, { type: 'invalid_request_error', param: 'shared_payment_granted_token', message: 'This SharedPaymentGrantedToken has already been used.' })
    }
    if (outcome === 'slow' || outcome === 'slow_unindexed') await new Promise((resolve) => setTimeout(resolve, slowMs))
    const metadata = Object.fromEntries(
      Object.entries(p)
        .filter(([k]) => k.startsWith('metadata['))
        .map(([k, value]) => [k.slice('metadata['.length, -1), value]),
    )
    const intent = {
      id: id('pi'),
      object: 'payment_intent',
      amount: Number(p.amount),
      amount_received: 0,
      currency: p.currency,
      status: 'succeeded',
      confirmation_method: 'automatic',
      capture_method: 'automatic',
      automatic_payment_methods: { enabled: true, allow_redirects: p['automatic_payment_methods[allow_redirects]'] ?? 'always' },
      payment_method: id('pm'),
      metadata,
      application_fee_amount: p.application_fee_amount !== undefined ? Number(p.application_fee_amount) : null,
      on_behalf_of: p.on_behalf_of ?? null,
      transfer_data: p['transfer_data[destination]'] !== undefined ? { destination: p['transfer_data[destination]'], ...(p['transfer_data[amount]'] !== undefined ? { amount: Number(p['transfer_data[amount]']) } : {}) } : null,
      transfer_group: p.transfer_group ?? null,
      last_payment_error: null as unknown,
      next_action: null as unknown,
      created: Math.floor(Date.now() / 1000),
      livemode: false,
    }
    record.paymentIntent = intent.id
    intents.set(intent.id, { intent, account: record.stripeAccount ?? '', token, outcome, retrieves: 0 })
    if (outcome === 'declined') {
      intent.status = 'requires_payment_method'
      const decline = { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.', doc_url: 'https://docs.stripe.com/error-codes/card-declined' }
      intent.last_payment_error = decline
      return error(402, { ...decline, payment_intent: intent })
    }
    if (outcome === 'action') {
      intent.status = 'requires_action'
      intent.next_action = { type: 'use_stripe_sdk', use_stripe_sdk: { type: 'three_d_secure_redirect' } }
      return { status: 200, body: intent }
    }
    consumed.add(token)
    if (outcome === 'processing' || outcome === 'processing_fails' || outcome === 'processing_held') {
      // An asynchronous payment method: confirmed, the outcome comes later (Stripe "How PaymentIntents work").
      intent.status = 'processing'
      return { status: 200, body: intent }
    }
    intent.amount_received = intent.amount
    return { status: 200, body: intent }
  }

  /** `GET /v1/payment_intents/{id}` (Stripe API "Retrieve a PaymentIntent"): the current state, never a replay. */
  function retrieve(record: RecordedRequest, id: string): Answer {
    const unauthorized = authenticate(record)
    if (unauthorized) return unauthorized
    const badVersion = checkVersion(record)
    if (badVersion) return badVersion
    const stored = intents.get(id)
    // Connect: an object on a connected account exists only for requests made as that account.
    if (!stored || stored.account !== (record.stripeAccount ?? '')) {
      return error(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${id}'`, doc_url: 'https://stripe.com/docs/error-codes/resource-missing' })
    }
    record.token = stored.token
    if (stored.intent.status === 'processing') {
      stored.retrieves++
      if (stored.retrieves >= processingRetrieves) {
        if (stored.outcome === 'processing') settle(stored, 'succeeded')
        if (stored.outcome === 'processing_fails') settle(stored, 'requires_payment_method')
      }
    }
    return { status: 200, body: stored.intent }
  }

  /**
   * `GET /v1/payment_intents/search` (Stripe API "Search PaymentIntents"): the Search Query Language's metadata
   * clauses (`metadata['key']:'value'`, joined by `AND`), on the requesting account, newest first, in a
   * `search_result` list. Anything else in the query is a 400, as Stripe answers a query it cannot parse.
   */
  function search(record: RecordedRequest, url: URL): Answer {
    const unauthorized = authenticate(record)
    if (unauthorized) return unauthorized
    const badVersion = checkVersion(record)
    if (badVersion) return badVersion
    const query = url.searchParams.get('query') ?? ''
    const clauses = query.split(/\s+AND\s+/)
    const wanted: [string, string][] = []
    for (const clause of clauses) {
      const match = /^metadata\['([^']+)'\]:'([^']*)'$/.exec(clause.trim())
      if (!match) return error(400, { type: 'invalid_request_error', param: 'query', message: `Invalid query: ${query}` })
      wanted.push([match[1]!, match[2]!])
    }
    const limit = Number(url.searchParams.get('limit') ?? '10')
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) return error(400, { type: 'invalid_request_error', param: 'limit', message: 'Limit must be between 1 and 100.' })
    const found = [...intents.values()]
      .filter((s) => s.account === (record.stripeAccount ?? ''))
      // Search is eventually consistent ("Search", data freshness: usually under a minute); this outcome stays unindexed.
      .filter((s) => s.outcome !== 'slow_unindexed')
      .filter((s) => wanted.every(([key, value]) => (s.intent as unknown as { metadata: Record<string, string> }).metadata[key] === value))
      .reverse()
    if (found[0]) record.token = found[0].token
    return { status: 200, body: { object: 'search_result', url: '/v1/payment_intents/search', has_more: found.length > limit, next_page: null, data: found.slice(0, limit).map((s) => s.intent) } }
  }

  /**
   * `GET /v1/shared_payment/granted_tokens/{id}` (Stripe API "Retrieve a SharedPaymentGrantedToken"): a token
   * this server knows lives for an hour from when it was first seen (`expired` ones ended an hour ago); `usage_limits`
   * carries `expires_at` in seconds. An unknown token is a 404.
   */
  function grantedToken(record: RecordedRequest, token: string): Answer {
    const unauthorized = authenticate(record)
    if (unauthorized) return unauthorized
    const outcome = outcomeOf(token)
    if (outcome === 'unknown') {
      return error(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such shared_payment_granted_token: '${token}'` })
    }
    const created = firstSeen.get(token) ?? Math.floor(Date.now() / 1000)
    firstSeen.set(token, created)
    const expiresAt = outcome === 'expired' ? created - 3600 : created + 3600
    return {
      status: 200,
      body: { id: token, object: 'shared_payment.granted_token', created, livemode: false, deactivated_at: null, deactivated_reason: null, usage_limits: { currency: 'usd', max_amount: 1_000_000, expires_at: expiresAt } },
    }
  }

  function settle(stored: Stored, status: 'succeeded' | 'requires_payment_method') {
    stored.intent.status = status
    if (status === 'succeeded') {
      stored.intent.amount_received = stored.intent.amount
      return
    }
    // A failed attempt detaches the payment method and reports why (Stripe "PaymentIntent object").
    stored.intent.payment_method = null
    stored.intent.last_payment_error = { type: 'card_error', code: 'insufficient_funds', message: "The customer's account has insufficient funds to cover this payment." }
  }

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (req.method === 'GET' && url.pathname === '/__test/requests') return inspect(url, res)
    if (req.method === 'POST' && url.pathname === '/__test/resolve') return resolve(url, res)
    const body = await readBody(req)
    const record = recordOf(req, url, body, requests.length + 1)
    requests.push(record)
    res.on('error', () => {})
    let answer: Answer
    const retrieved = /^\/v1\/payment_intents\/([^/]+)$/.exec(url.pathname)
    if (req.method === 'POST' && url.pathname === '/v1/payment_intents') {
      answer = await paymentIntents(record)
    } else if (req.method === 'GET' && /^\/v1\/shared_payment\/granted_tokens\/[^/]+$/.test(url.pathname)) {
      answer = grantedToken(record, decodeURIComponent(url.pathname.split('/').pop()!))
    } else if (req.method === 'GET' && url.pathname === '/v1/payment_intents/search') {
      answer = search(record, url)
    } else if (req.method === 'GET' && retrieved) {
      answer = retrieve(record, decodeURIComponent(retrieved[1]!))
    } else {
      answer = error(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${url.pathname}).` })
    }
    record.status = answer.status
    record.replayed = answer.headers?.['idempotent-replayed'] === 'true'
    const err = (answer.body as { error?: { type: string; code?: string; payment_intent?: { id: string } } }).error
    if (err) {
      record.error = { type: err.type, code: err.code }
      if (err.payment_intent) record.paymentIntent = err.payment_intent.id
    } else if ((answer.body as { object?: string }).object === 'payment_intent') {
      record.paymentIntent = (answer.body as { id: string }).id
    }
    // Answered as far as Stripe is concerned, even when the caller already gave up waiting.
    record.finished = true
    res.writeHead(answer.status, { 'content-type': 'application/json', 'request-id': id('req'), 'stripe-version': record.stripeVersion ?? '2020-08-27', ...answer.headers })
    res.end(JSON.stringify(answer.body))
  })

  function resolve(url: URL, res: ServerResponse) {
    const token = url.searchParams.get('token')
    const status = url.searchParams.get('status')
    const pending = [...intents.values()].filter((s) => s.token === token && s.intent.status === 'processing')
    if ((status !== 'succeeded' && status !== 'requires_payment_method') || pending.length === 0) {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'need status=succeeded|requires_payment_method and the token of a processing PaymentIntent' }))
      return
    }
    for (const stored of pending) settle(stored, status)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(pending.map((s) => s.intent)))
  }

  async function inspect(url: URL, res: ServerResponse) {
    const token = url.searchParams.get('token')
    const key = url.searchParams.get('idempotencyKey')
    const matching = () => requests.filter((r) => (token === null || r.token === token) && (key === null || r.idempotencyKey === key))
    if (url.searchParams.get('settled') === '1') {
      const deadline = Date.now() + 10_000
      while (matching().some((r) => !r.finished) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(matching()))
  }

  return { ...(await listen(server, options.port)), requests }
}

function outcomeOf(token: string | undefined): Outcome {
  // Longest name first: `spt_processing_fails_…` is not `processing`.
  const known = [...outcomes].sort((a, b) => b.length - a.length)
  return known.find((outcome) => token?.startsWith(`spt_${outcome}_`)) ?? 'unknown'
}

function authenticate(record: RecordedRequest): Answer | undefined {
  if (record.auth === 'none') {
    return error(401, { type: 'invalid_request_error', message: 'You did not provide an API key. You need to provide your API key in the Authorization header.' })
  }
  if (record.apiKey !== testSecretKey) {
    return error(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${mask(record.apiKey ?? '')}` })
  }
  return undefined
}

function checkVersion(record: RecordedRequest): Answer | undefined {
  if (record.stripeVersion !== undefined && !/^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/.test(record.stripeVersion)) {
    return error(400, { type: 'invalid_request_error', message: `Invalid Stripe API version: ${record.stripeVersion}` })
  }
  return undefined
}

function validate(record: RecordedRequest): Answer | undefined {
  const p = record.params
  for (const name of Object.keys(p)) {
    if (!knownParams.test(name)) return error(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: name, message: `Received unknown parameter: ${name}` })
  }
  // SPTs are a preview feature: a non-preview version does not know the parameter.
  if (p.shared_payment_granted_token !== undefined && !record.stripeVersion?.endsWith('.preview')) {
    return error(400, { type: 'invalid_request_error', code: 'parameter_unknown', param: 'shared_payment_granted_token', message: 'Received unknown parameter: shared_payment_granted_token' })
  }
  for (const name of ['amount', 'currency']) {
    if (p[name] === undefined) return error(400, { type: 'invalid_request_error', code: 'parameter_missing', param: name, message: `Missing required param: ${name}.` })
  }
  for (const name of ['amount', 'application_fee_amount', 'transfer_data[amount]']) {
    if (p[name] !== undefined && !/^\d+$/.test(p[name]!)) {
      return error(400, { type: 'invalid_request_error', code: 'parameter_invalid_integer', param: name, message: `Invalid integer: ${p[name]}` })
    }
  }
  if (Number(p.amount) < 1) return error(400, { type: 'invalid_request_error', code: 'amount_too_small', param: 'amount', message: 'Amount must be at least 1.' })
  if (!/^[a-z]{3}$/.test(p.currency!)) return error(400, { type: 'invalid_request_error', param: 'currency', message: `Invalid currency: ${p.currency}. Stripe currently supports these currencies in lowercase.` })
  for (const name of ['confirm', 'automatic_payment_methods[enabled]']) {
    if (p[name] !== undefined && p[name] !== 'true' && p[name] !== 'false') {
      return error(400, { type: 'invalid_request_error', code: 'parameter_invalid_boolean', param: name, message: `Invalid boolean: ${p[name]}` })
    }
  }
  return undefined
}

function error(status: number, body: Record<string, unknown>): Answer {
  return { status, body: { error: body } }
}

function mask(key: string): string {
  return key.length > 8 ? `${key.slice(0, 8)}${'*'.repeat(Math.max(0, key.length - 12))}${key.slice(-4)}` : '****'
}

function recordOf(req: IncomingMessage, url: URL, body: string, seq: number): RecordedRequest {
  const header = (name: string) => {
    const value = req.headers[name]
    return Array.isArray(value) ? value.join(', ') : value
  }
  const authorization = header('authorization') ?? ''
  let auth: RecordedRequest['auth'] = 'none'
  let apiKey: string | undefined
  if (/^bearer /i.test(authorization)) {
    auth = 'bearer'
    apiKey = authorization.slice(7).trim()
  } else if (/^basic /i.test(authorization)) {
    auth = 'basic'
    apiKey = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8').split(':')[0]
  }
  const contentType = header('content-type')
  const params: Record<string, string> = {}
  if (contentType?.startsWith('application/x-www-form-urlencoded')) {
    for (const [name, value] of new URLSearchParams(body)) params[name] = value
  }
  return {
    seq,
    method: req.method ?? '',
    path: url.pathname,
    auth,
    apiKey,
    contentType,
    stripeVersion: header('stripe-version'),
    stripeAccount: header('stripe-account'),
    idempotencyKey: header('idempotency-key'),
    params,
    token: params.shared_payment_granted_token,
    finished: false,
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (data += chunk))
    req.on('end', () => resolve(data))
    req.on('error', reject)
  })
}
