// `npm run pay -- <url> [options]`: pays a priced URL with the project's client (paymentFetch + a wallet) and
// prints a line per step: the request, each 402 challenge, the payment, the response and the decoded receipt.
// Against the local demo (`npm start`) the payer key and chain come from the demo's state file; against any
// other gateway, from MPP_PAYER_KEY, TEMPO_RPC_URL and TEMPO_CHAIN_ID. See README.md, "Local demo".
import { parseArgs } from 'node:util'
import { type Hex, formatUnits, keccak256 } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { type Step, type Wallet, paymentFetch } from '../src/client/fetch.js'
import { stripeWallet } from '../src/client/wallets/stripe.js'
import { tempoWallet } from '../src/client/wallets/tempo.js'
import type { Challenge } from '../src/core/Challenge.js'
import * as Receipt from '../src/core/Receipt.js'
import { exponent } from '../src/methods/stripe/currency.js'
import { defaultTokens } from '../src/methods/tempo/chains.js'
import { readState } from '../demo/state.js'
import { spt } from '../src/testing/stripe-fixtures.js'

const usage = `usage: npm run pay -- <url> [--method tempo|stripe] [--mode pull|push] [-X METHOD] [-d BODY] [--max AMOUNT] [--spt TOKEN]

  --method  the payment method to use (default tempo)
  --mode    how a Tempo charge is paid: pull (the gateway broadcasts, default) or push (this client does)
  -X, -d    the HTTP method and request body (default GET, no body)
  --max     the most this payment may cost, in the currency's units (default 1)
  --spt     a Stripe Shared Payment Token (the local demo makes a test token when absent)

Outside the local demo: MPP_PAYER_KEY (0x… private key), TEMPO_RPC_URL and TEMPO_CHAIN_ID (optional) set the payer.`

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
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help || positionals.length !== 1) {
    process.stderr.write(`${usage}\n`)
    return values.help ? 0 : 2
  }
  const url = new URL(positionals[0]!)
  if (values.mode !== undefined && values.mode !== 'pull' && values.mode !== 'push') throw new Error('--mode is pull or push')
  if (!/^\d+(\.\d+)?$/.test(values.max)) throw new Error('--max is a decimal amount such as 0.50')
  const demo = readState(url)

  let wallet: Wallet
  let payer: string
  if (values.method === 'tempo') {
    // One key pays any number of times: the demo's first payer unless MPP_PAYER_KEY names another.
    const key = (process.env.MPP_PAYER_KEY as Hex | undefined) ?? demo?.state.payers[0]
    const rpcUrl = process.env.TEMPO_RPC_URL || demo?.state.rpc
    if (!key || !rpcUrl) throw new Error(`no local demo serves ${url.host}: start one with \`npm start\`, or set MPP_PAYER_KEY and TEMPO_RPC_URL`)
    const chainId = process.env.TEMPO_CHAIN_ID ? Number(process.env.TEMPO_CHAIN_ID) : demo?.state.chainId
    const account = privateKeyToAccount(key)
    payer = account.address
    wallet = tempoWallet({ account, rpcUrl, chainId, mode: values.mode as 'pull' | 'push' | undefined })
  } else if (values.method === 'stripe') {
    const token = values.spt ?? process.env.STRIPE_SPT
    if (!token && !demo) throw new Error('a Stripe payment needs --spt <Shared Payment Token> outside the local demo')
    // The local Stripe API server grants any `spt_ok_…` token (see src/testing/stripe-fixtures.ts).
    wallet = stripeWallet({ token: () => token ?? spt('ok') })
    payer = token ? 'the given Shared Payment Token' : 'a test Shared Payment Token of the local Stripe API'
  } else {
    throw new Error(`--method is tempo or stripe, not ${values.method}`)
  }

  const init: RequestInit = { method: values.request.toUpperCase(), ...(values.data !== undefined ? { body: values.data, headers: { 'content-type': 'text/plain' } } : {}) }
  const mode = values.mode ?? 'pull'
  const started = Date.now()
  const pay = paymentFetch({
    wallets: [wallet],
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
  const response = await pay(url, init)
  const body = await response.text()
  line('response', `${response.status} ${response.statusText}`)
  line('body', body.length > 600 ? `${body.slice(0, 600)}…` : body)
  const header = response.headers.get('payment-receipt')
  if (header) line('receipt', describeReceipt(Receipt.deserialize(header)))
  else if (response.ok) line('receipt', 'none (a free route)')
  if (response.status === 402) line('unpaid', `no ${values.method} offer this client pays was accepted (see the challenges above)`)
  line('time', `${Date.now() - started} ms`)
  return response.ok ? 0 : 1
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
  const expires = challenge.expires ? `, expires ${challenge.expires} (in ${Math.round((Date.parse(challenge.expires) - Date.now()) / 1000)} s)` : ''
  const units = challenge.method === 'stripe' ? 'minor units' : 'base units'
  return `${challenge.method} ${challenge.intent}: ${amount} ${currency} (${request.amount} ${units}) ${where}${expires}${extras.length ? `, ${extras.join(', ')}` : ''}`
}

function report(step: Step, context: { payer: string; mode: string }) {
  if (step.type === 'challenged') {
    line('402', `Payment Required, ${step.challenges.length} offer(s)`)
    for (const challenge of step.challenges) line('challenge', describe(challenge))
  } else if (step.type === 'paying') {
    const { amount, currency } = display(step.challenge)
    const how = step.challenge.method === 'tempo' ? (amount === '0' ? ', a signed proof' : ` (${context.mode})`) : ''
    line('paying', `${step.challenge.method} ${amount} ${currency} from ${context.payer}${how}`)
  } else if (step.type === 'paid') {
    const payload = step.payload as { type?: string; signature?: Hex; hash?: Hex; spt?: string }
    if (payload.type === 'transaction' && payload.signature?.startsWith('0x78')) {
      line('payment', 'fee-sponsorship hand-off signed; the gateway co-signs and broadcasts it')
    } else if (payload.type === 'transaction') {
      line('payment', `transaction ${keccak256(payload.signature!)} signed; the gateway broadcasts it`)
    } else if (payload.type === 'hash') {
      line('payment', `transaction ${payload.hash} broadcast and mined`)
    } else if (payload.type === 'proof') {
      line('payment', `EIP-712 proof ${payload.signature!.slice(0, 18)}… signed (no transfer for a zero amount)`)
    } else if (payload.spt) {
      line('payment', `Shared Payment Token ${payload.spt.slice(0, 12)}… granted`)
    }
  } else if (step.type === 'retrying') {
    line('retrying', `the gateway answered ${step.status}; sending the same credential again in ${step.afterSeconds} s`)
  }
}

function describeReceipt(receipt: Receipt.Receipt): string {
  const { method, status, reference, timestamp, ...rest } = receipt
  const more = Object.entries(rest).map(([k, v]) => `${k} ${String(v)}`)
  return [`${method} ${status}`, `reference ${reference}`, `at ${timestamp}`, ...more].join(', ')
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`npm run pay: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
