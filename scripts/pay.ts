// `npm run pay -- <url> [options]`: pays a priced URL with the project's client (paymentFetch + a wallet) and
// prints a line per step: the request, each 402 challenge, the payment, the response and the decoded receipt.
// A session route is paid from a payment channel: opened once within --deposit, then one voucher per request or
// per streamed unit; the stream is printed as it arrives. Open channels are kept in the demo's state folder (or
// MPP_CHANNELS_FILE), so the next run reuses them; --close closes the channel and prints the payout and refund.
// Against the local demo (`npm start`) the payer key and chain come from the demo's state file; against any
// other server, from MPP_PAYER_KEY, TEMPO_RPC_URL and TEMPO_CHAIN_ID. See docs/demo.md.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type Hex, createPublicClient, formatUnits, http, keccak256, parseEventLogs, parseUnits } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { type Step, type Wallet, paymentFetch } from '../src/client/fetch.js'
import { stripeWallet } from '../src/client/wallets/stripe.js'
import { tempoWallet } from '../src/client/wallets/tempo.js'
import { type ChannelChange, type SavedChannel, type SessionWallet, TempoSessionWalletError, tempoSessionWallet } from '../src/client/wallets/tempo-session.js'
import { escrowAbi } from '../src/methods/tempo/session/abi.js'
import type { Challenge } from '../src/core/Challenge.js'
import * as Receipt from '../src/core/Receipt.js'
import { exponent } from '../src/methods/stripe/currency.js'
import { defaultTokens } from '../src/methods/tempo/chains.js'
import { readState } from '../demo/state.js'
import { spt } from '../src/testing/stripe-fixtures.js'

const usage = `usage: npm run pay -- <url> [--method tempo|stripe] [--mode pull|push] [-X METHOD] [-d BODY] [--max AMOUNT] [--spt TOKEN]
                          [--deposit AMOUNT] [--close]

  --method  the payment method to use (default tempo)
  --mode    how a Tempo charge is paid: pull (the server broadcasts, default) or push (this client does)
  -X, -d    the HTTP method and request body (default GET, no body)
  --max     the most this payment may cost, in the currency's units (default 1)
  --spt     a Stripe Shared Payment Token (the local demo makes a test token when absent)
  --deposit the most to deposit into a payment channel for a session route, in the token's units (default 1);
            naming it prefers a session where a route offers both a charge and a session
  --close   after the request, close the session's channel: the seller is paid what was used, the rest refunded

Outside the local demo: MPP_PAYER_KEY (0x… private key), TEMPO_RPC_URL and TEMPO_CHAIN_ID (optional) set the payer.`

/** The URL to pay: a host and path without a scheme is refused with the URL it probably meant. */
function target(text: string): URL {
  if (!text.includes('://')) throw new Error(`${text} has no scheme: give the whole URL, as in http://${text}`)
  if (!/^https?:\/\//i.test(text)) throw new Error(`${text} is not an http or https URL`)
  try {
    return new URL(text)
  } catch {
    throw new Error(`${text} is not a valid URL`)
  }
}

const line = (label: string, text: string) => process.stdout.write(`${label.padEnd(9)} ${text}\n`)

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      method: { type: 'string', default: 'tempo' },
      mode: { type: 'string' },
      request: { type: 'string', short: 'X', default: 'GET' },
      data: { type: 'string', short: 'd' },
      max: { type: 'string', default: '1' },
      spt: { type: 'string' },
      deposit: { type: 'string' },
      close: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help || positionals.length !== 1) {
    process.stderr.write(`${usage}\n`)
    return values.help ? 0 : 2
  }
  const url = target(positionals[0]!)
  if (values.mode !== undefined && values.mode !== 'pull' && values.mode !== 'push') throw new Error('--mode is pull or push')
  if (!/^\d+(\.\d+)?$/.test(values.max)) throw new Error('--max is a decimal amount such as 0.50')
  if (values.deposit !== undefined && !/^\d+(\.\d{1,6})?$/.test(values.deposit)) throw new Error('--deposit is a decimal amount such as 2.50')
  const demo = readState(url)

  const wallets: Wallet[] = []
  let sessions: { wallet: SessionWallet; rpcUrl: string } | undefined
  let payer: string
  if (values.method === 'tempo') {
    // One key pays any number of times: the demo's first payer unless MPP_PAYER_KEY names another.
    const key = (process.env.MPP_PAYER_KEY as Hex | undefined) ?? demo?.state.payers[0]
    const rpcUrl = process.env.TEMPO_RPC_URL || demo?.state.rpc
    if (!key || !rpcUrl) throw new Error(`no local demo serves ${url.host}: start one with \`npm start\`, or set MPP_PAYER_KEY and TEMPO_RPC_URL`)
    const chainId = process.env.TEMPO_CHAIN_ID ? Number(process.env.TEMPO_CHAIN_ID) : demo?.state.chainId
    const account = privateKeyToAccount(key)
    payer = account.address
    const charge = tempoWallet({ account, rpcUrl, chainId, mode: values.mode as 'pull' | 'push' | undefined })
    const store = channelFile(demo?.dir)
    const session = tempoSessionWallet({
      account,
      rpcUrl,
      chainId: chainId ?? Number(await createPublicClient({ transport: http(rpcUrl) }).getChainId()),
      // TIP-20 tokens have 6 decimals.
      maxDeposit: parseUnits(values.deposit ?? '1', 6),
      channels: store ? readChannels(store) : [],
      onChannel: (change) => {
        if (store) saveChannel(store, change.channel)
        reportChannel(change)
      },
    })
    sessions = { wallet: session, rpcUrl }
    wallets.push(...(values.deposit !== undefined ? [session, charge] : [charge, session]))
  } else if (values.method === 'stripe') {
    const token = values.spt ?? process.env.STRIPE_SPT
    if (!token && !demo) throw new Error('a Stripe payment needs --spt <Shared Payment Token> outside the local demo')
    // The local Stripe API server grants any `spt_ok_…` token (see src/testing/stripe-fixtures.ts).
    wallets.push(stripeWallet({ token: () => token ?? spt('ok') }))
    payer = token ? 'the given Shared Payment Token' : 'a test Shared Payment Token of the local Stripe API'
  } else {
    throw new Error(`--method is tempo or stripe, not ${values.method}`)
  }

  const init: RequestInit = { method: values.request.toUpperCase(), ...(values.data !== undefined ? { body: values.data, headers: { 'content-type': 'text/plain' } } : {}) }
  const mode = values.mode ?? 'pull'
  const started = Date.now()
  const pay = paymentFetch({
    wallets,
    // The spending policy: nothing above --max, in the offered currency's own units.
    approve: (challenge) => {
      const price = display(challenge)
      const ok = Number(price.amount) <= Number(values.max)
      if (!ok) line('refused', `${price.amount} ${price.currency} is above --max ${values.max}`)
      return ok
    },
    onStep: (step) => report(step, { payer, mode }),
  })
  line('request', `${init.method} ${url}`)
  let ok = false
  try {
    ok = await request(pay, url, init, values.method)
  } catch (error) {
    // The session wallet will not pay on (its deposit limit): say so, and still close when asked.
    if (!(error instanceof TempoSessionWalletError) || !values.close) throw error
    line('unpaid', error.message)
  }
  if (values.close) {
    if (!sessions) throw new Error('--close closes a Tempo payment channel')
    await closeChannel(sessions, url.href)
  }
  line('time', `${Date.now() - started} ms`)
  return ok ? 0 : 1
}

async function request(pay: ReturnType<typeof paymentFetch>, url: URL, init: RequestInit, method: string): Promise<boolean> {
  const response = await pay(url, init)
  line('response', `${response.status} ${response.statusText}`)
  const streamed = (response.headers.get('content-type') ?? '').startsWith('text/event-stream')
  if (streamed && response.body) await printStream(response.body)
  else {
    const body = await response.text()
    line('body', body.length > 600 ? `${body.slice(0, 600)}…` : body)
  }
  const header = response.headers.get('payment-receipt')
  // A stream's own final receipt event says what it cost; its header only what stood when it began.
  if (header && !streamed) line('receipt', describeReceipt(Receipt.deserialize(header)))
  else if (response.ok && !streamed) line('receipt', 'none (a free route)')
  if (response.status === 402) line('unpaid', `no ${method} offer this client pays was accepted (see the challenges above)`)
  return response.ok
}

/** Where open channels are kept: the demo's state folder, or MPP_CHANNELS_FILE. */
function channelFile(demoDir: string | undefined): string | undefined {
  return process.env.MPP_CHANNELS_FILE || (demoDir ? join(demoDir, 'channels.json') : undefined)
}

function readChannels(file: string): SavedChannel[] {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as SavedChannel[]
  } catch {
    return []
  }
}

function saveChannel(file: string, channel: SavedChannel): void {
  const others = readChannels(file).filter((c) => c.channelId !== channel.channelId)
  // Readable by the owner only; a closed channel is dropped.
  writeFileSync(file, JSON.stringify(channel.closed ? others : [...others, channel], null, 2), { mode: 0o600 })
}

const tokenAmount = (amount: bigint | string) => `${formatUnits(BigInt(amount), 6)}`

function reportChannel(change: ChannelChange): void {
  const { channel } = change
  const id = `${channel.channelId.slice(0, 10)}…`
  if (change.type === 'open') line('open', `channel ${channel.channelId} with a deposit of ${tokenAmount(channel.deposit)} (signed; the server broadcasts it)`)
  if (change.type === 'voucher') line('voucher', `${tokenAmount(change.cumulative!)} in all on channel ${id} (deposit ${tokenAmount(channel.deposit)})`)
  if (change.type === 'topUp') line('topUp', `channel ${id} deposit raised to ${tokenAmount(channel.deposit)}`)
}

// Prints a server-sent event stream as it arrives: an OpenAI-style stream as its text, payment events as lines.
async function printStream(body: ReadableStream<Uint8Array>): Promise<void> {
  const decoder = new TextDecoder()
  let buffer = ''
  let inline = false
  const endInline = () => {
    if (inline) process.stdout.write('\n')
    inline = false
  }
  const reader = body.getReader()
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>
    try {
      chunk = await reader.read()
    } catch (error) {
      // The wallet would not pay on (the deposit limit, a refused voucher): the stream ends here, paid up to now.
      endInline()
      line('stopped', error instanceof Error ? error.message : String(error))
      await reader.cancel().catch(() => {})
      return
    }
    const { done, value } = chunk
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    let end: number
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '')
      const event = /^event: ?(.*)$/m.exec(block)?.[1]?.trim()
      const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n')
      if (event === 'payment-need-voucher') {
        endInline()
        const need = JSON.parse(data) as { requiredCumulative: string }
        line('need', `the stream waits for a voucher of ${tokenAmount(need.requiredCumulative)} in all`)
      } else if (event === 'payment-receipt') {
        endInline()
        line('receipt', describeReceipt(JSON.parse(data) as Receipt.Receipt))
      } else if (data && data !== '[DONE]') {
        let text: string | undefined
        try {
          const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; usage?: Record<string, number> }
          text = chunk.choices?.[0]?.delta?.content
          if (chunk.usage) {
            endInline()
            line('usage', Object.entries(chunk.usage).map(([k, v]) => `${k} ${v}`).join(', '))
            continue
          }
        } catch {
          // Not JSON: printed as it is.
        }
        if (text === undefined) {
          endInline()
          line('event', data.length > 300 ? `${data.slice(0, 300)}…` : data)
        } else {
          if (!inline) process.stdout.write(`${'stream'.padEnd(9)} `)
          inline = true
          process.stdout.write(text)
        }
      }
    }
  }
  endInline()
}

// Closes the channel cooperatively and reads the payout and the refund from the close transaction's event.
async function closeChannel(sessions: { wallet: SessionWallet; rpcUrl: string }, url: string): Promise<void> {
  const receipt = await sessions.wallet.close(url)
  if (!receipt) {
    line('close', 'no open channel pays this server')
    return
  }
  line('closed', describeReceipt(receipt))
  if (!receipt.txHash) return
  const chain = createPublicClient({ transport: http(sessions.rpcUrl) })
  const mined = await chain.getTransactionReceipt({ hash: receipt.txHash as Hex })
  const [closed] = parseEventLogs({ abi: escrowAbi, logs: mined.logs, eventName: 'ChannelClosed' })
  if (!closed) throw new Error(`the close transaction ${receipt.txHash} has no ChannelClosed event`)
  line('payout', `${tokenAmount(closed.args.settledToPayee)} to the seller ${closed.args.payee}`)
  line('refund', `${tokenAmount(closed.args.refundedToPayer)} to the payer ${closed.args.payer} (transaction ${receipt.txHash})`)
}

function display(challenge: Challenge): { amount: string; currency: string } {
  const request = challenge.request as { amount?: string; currency?: string; methodDetails?: { chainId?: number } }
  const amount = BigInt(request.amount ?? '0')
  const currency = String(request.currency ?? '')
  if (challenge.method === 'stripe') return { amount: formatUnits(amount, exponent(currency)), currency: currency.toUpperCase() }
  const token = defaultTokens(request.methodDetails?.chainId ?? 0).find((t) => t.address.toLowerCase() === currency.toLowerCase())
  // TIP-20 tokens have 6 decimals.
  return { amount: formatUnits(amount, token?.decimals ?? 6), currency: token?.symbol ?? currency }
}

function describe(challenge: Challenge): string {
  const request = challenge.request as { amount?: string; recipient?: string; methodDetails?: Record<string, unknown> }
  const { amount, currency } = display(challenge)
  const details = request.methodDetails ?? {}
  const where = challenge.method === 'tempo' ? `to ${request.recipient} on chain ${details.chainId}` : `to Stripe profile ${details.networkId}`
  const extras = [
    details.feePayer === true ? 'fee sponsored' : '',
    Array.isArray(details.splits) ? `${details.splits.length} split(s)` : '',
    Array.isArray(details.supportedModes) ? `modes ${details.supportedModes.join('/')}` : '',
  ].filter(Boolean)
  if (challenge.intent === 'session') {
    const session = challenge.request as { unitType?: string; suggestedDeposit?: string; description?: string; methodDetails?: { channelId?: string } }
    const more = [
      session.suggestedDeposit ? `suggested deposit ${formatUnits(BigInt(session.suggestedDeposit), 6)} ${currency}` : '',
      session.methodDetails?.channelId ? `resumes channel ${session.methodDetails.channelId}` : '',
      // A route priced per input and output token names both prices here; the amount is one unit's (output) price.
      session.description ? `"${session.description}"` : '',
    ].filter(Boolean)
    return `${challenge.method} session: ${amount} ${currency} per ${session.unitType ?? 'unit'} ${where}${more.length ? `, ${more.join(', ')}` : ''}`
  }
  const expires = challenge.expires ? `, expires ${challenge.expires} (in ${Math.round((Date.parse(challenge.expires) - Date.now()) / 1000)} s)` : ''
  const units = challenge.method === 'stripe' ? 'minor units' : 'base units'
  return `${challenge.method} ${challenge.intent}: ${amount} ${currency} (${request.amount} ${units}) ${where}${expires}${extras.length ? `, ${extras.join(', ')}` : ''}`
}

function report(step: Step, context: { payer: string; mode: string }) {
  if (step.type === 'challenged') {
    line('402', `Payment Required, ${step.challenges.length} offer(s)`)
    for (const challenge of step.challenges) line('challenge', describe(challenge))
  } else if (step.type === 'paying' && step.challenge.intent === 'session') {
    line('paying', `${step.challenge.method} session from ${context.payer}, from a payment channel`)
  } else if (step.type === 'paying') {
    const { amount, currency } = display(step.challenge)
    const how = step.challenge.method === 'tempo' ? (amount === '0' ? ', a signed proof' : ` (${context.mode})`) : ''
    line('paying', `${step.challenge.method} ${amount} ${currency} from ${context.payer}${how}`)
  } else if (step.type === 'paid' && step.challenge.intent === 'session') {
    // The session wallet reports opens, vouchers and top-ups as they happen (reportChannel).
  } else if (step.type === 'paid') {
    const payload = step.payload as { type?: string; signature?: Hex; hash?: Hex; spt?: string }
    if (payload.type === 'transaction' && payload.signature?.startsWith('0x78')) {
      line('payment', 'fee-sponsorship hand-off signed; the server co-signs and broadcasts it')
    } else if (payload.type === 'transaction') {
      line('payment', `transaction ${keccak256(payload.signature!)} signed; the server broadcasts it`)
    } else if (payload.type === 'hash') {
      line('payment', `transaction ${payload.hash} broadcast and mined`)
    } else if (payload.type === 'proof') {
      line('payment', `EIP-712 proof ${payload.signature!.slice(0, 18)}… signed (no transfer for a zero amount)`)
    } else if (payload.spt) {
      line('payment', `Shared Payment Token ${payload.spt.slice(0, 12)}… granted`)
    }
  } else if (step.type === 'retrying') {
    line('retrying', `the server answered ${step.status}; sending the same credential again in ${step.afterSeconds} s`)
  }
}

// A session receipt counts in base units; shown in the token's units, like every other amount printed here.
const receiptAmounts = new Set(['spent', 'acceptedCumulative'])

function describeReceipt(receipt: Receipt.Receipt): string {
  const { method, status, reference, timestamp, ...rest } = receipt
  const more = Object.entries(rest).map(([k, v]) => `${k} ${method === 'tempo' && receiptAmounts.has(k) ? tokenAmount(String(v)) : String(v)}`)
  return [`${method} ${status}`, `reference ${reference}`, `at ${timestamp}`, ...more].join(', ')
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`npm run pay: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
