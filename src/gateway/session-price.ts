/** @module A pricing-table session entry as the gateway serves it: its challenge request, and its discovery offer. */
import type { DiscoveryOffer } from '../core/Discovery.js'
import type { SessionMethod } from '../core/SessionMethod.js'
import type { MeteredRoute } from './metered.js'
import type { RouteEntry } from './pricing.js'

/** What each unit of a session entry is. */
const per = { request: 'per request', event: 'per streamed event', tokens: 'per token' } as const

/** The unit type a session challenge names (draft-tempo-session-00, `unitType`). */
const unitType = { request: 'request', event: 'event', tokens: 'llm_token' } as const

/**
 * Prices a route's session entry with its method: the challenge request (for `tokens`, priced per output token,
 * with the input price kept for the reserve), checked now so a bad price stops the gateway from starting.
 * @example
 * const metered = sessionPrice('routes[3] (POST /v1/chat/completions)', entry, tempoSession({ … }), 'pathUSD')
 */
export function sessionPrice(label: string, entry: RouteEntry, method: SessionMethod, acceptCurrency: string | undefined): MeteredRoute {
  const terms = entry.session!
  const currency = terms.currency ?? acceptCurrency
  const amount = terms.unit === 'tokens' ? terms.output! : terms.price!
  // A challenge prices one unit (for tokens, the output price): its description and the 402's detail say both prices.
  const name = terms.unit === 'tokens' ? method.display?.(method.request({ amount, currency })).currency : undefined
  const asked = name && `${terms.input} ${name} per input token, ${terms.output} ${name} per output token`
  const request = method.request({
    amount,
    unitType: unitType[terms.unit],
    suggestedDeposit: terms.suggestedDeposit,
    minVoucherDelta: terms.minVoucherDelta,
    currency,
    description: asked ? (entry.description ? `${entry.description}; ${asked}` : asked) : entry.description,
  })
  const tokens =
    terms.unit === 'tokens'
      ? {
          input: BigInt(method.request({ amount: terms.input!, currency }).amount),
          output: BigInt(request.amount),
          maxInputTokens: terms.maxInputTokens,
          maxOutputTokens: terms.maxOutputTokens!,
          allowFields: terms.allowFields,
        }
      : undefined
  return {
    label,
    unit: terms.unit,
    // `request` and `event` take one unit up front (an event route's pays for its first event); `tokens` its reserve.
    offer: { method, request, description: request.description, asked, upfrontUnits: terms.unit === 'tokens' ? 0 : 1, ttlSeconds: entry.expires ?? 3600 },
    tokens,
  }
}

/**
 * The discovery offer of a session entry (Payment Discovery draft, "Payment Offer Object"): the price of one unit in
 * base units, or for `tokens` `amount: null` with both prices in the note.
 * @example
 * sessionDiscoveryOffer(entry, metered) // { intent: 'session', method: 'tempo', amount: '10', currency: '0x20c0…', description: '…' }
 */
export function sessionDiscoveryOffer(entry: RouteEntry, metered: MeteredRoute): DiscoveryOffer {
  const request = metered.offer.request
  const terms = entry.session!
  const note =
    metered.tokens !== undefined
      ? `Session, per token: input ${metered.tokens.input}, output ${metered.tokens.output} base units`
      : `Session, ${request.amount} base units ${per[terms.unit]}`
  return {
    intent: 'session',
    method: metered.offer.method.name,
    amount: metered.tokens !== undefined ? null : request.amount,
    currency: request.currency,
    description: entry.description ? `${entry.description}. ${note}` : note,
  }
}
