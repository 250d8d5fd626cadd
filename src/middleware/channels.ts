/** @module The operator listing of a payer's session channels, behind a bearer secret. */
import type { Context, Env, Handler } from 'hono'
import { BadRequestError, PaymentUnavailableError } from '../core/Errors.js'
import * as Server from '../core/Server.js'
import type { ChannelState } from '../storage/ChannelState.js'
import type { PayerChannels } from '../storage/PayerChannels.js'

/** Where the listing reads from, and the secret that guards it. */
export type ChannelListing<E extends Env = Env> = {
  /** The operator secret (`wrangler secret put MPP_OPERATOR_SECRET`); without one the listing answers 404. */
  secret: (c: Context<E>) => string | undefined
  channels: (c: Context<E>) => DurableObjectNamespace<ChannelState>
  payers: (c: Context<E>) => DurableObjectNamespace<PayerChannels>
}

/** One channel as the listing shows it; amounts are base-unit decimal strings. */
export type ListedChannel = {
  channelId: string
  status: 'open' | 'closing' | 'closed' | 'unknown'
  deposit: string
  accepted: string
  spent: string
  settled: string
  units: number
  closeRequestedAt: string
  openedAt: string
}

/**
 * Answers `GET …?payer=0x…` with that payer's channels (deposit, spent, settled, state), for an operator holding the
 * bearer secret. Disabled (404) while no secret (or no channel storage) is set; a wrong secret is 401.
 * @example
 * if (url.pathname === '/__mpp/channels') return listChannels(request, { secret: env.MPP_OPERATOR_SECRET, channels: env.CHANNEL_STATE, payers: env.PAYER_CHANNELS })
 */
export async function listChannels(
  request: Request,
  options: { secret: string | undefined; channels: DurableObjectNamespace<ChannelState> | undefined; payers: DurableObjectNamespace<PayerChannels> | undefined },
): Promise<Response> {
  const { secret, channels: namespace, payers } = options
  if (!secret || !namespace || !payers) return new Response('Not Found', { status: 404 })
  const presented = /^Bearer (.+)$/i.exec(request.headers.get('authorization') ?? '')?.[1] ?? ''
  if (!(await sameSecret(presented, secret))) {
    return new Response(JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status: 401 }), {
      status: 401,
      headers: { 'content-type': 'application/problem+json', 'www-authenticate': 'Bearer realm="mpp-operator"', 'cache-control': 'no-store' },
    })
  }
  const payer = new URL(request.url).searchParams.get('payer') ?? ''
  if (!/^0x[0-9a-fA-F]{40}$/.test(payer)) return Server.problemResponse(new BadRequestError({ detail: 'payer must be a 20-byte hex address' }))
  try {
    const ids = await payers.get(payers.idFromName(payer.toLowerCase())).list(200)
    const channels = await Promise.all(
      ids.map(async ({ channelId, openedAt }): Promise<ListedChannel> => {
        const account = await namespace.get(namespace.idFromName(channelId)).state()
        return {
          channelId,
          status: account?.status ?? 'unknown',
          deposit: (account?.deposit ?? 0n).toString(),
          accepted: (account?.accepted ?? 0n).toString(),
          spent: (account?.spent ?? 0n).toString(),
          settled: (account?.settled ?? 0n).toString(),
          units: account?.units ?? 0,
          closeRequestedAt: (account?.closeRequestedAt ?? 0n).toString(),
          openedAt: new Date(openedAt).toISOString(),
        }
      }),
    )
    return new Response(JSON.stringify({ payer: payer.toLowerCase(), channels }), { headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } })
  } catch {
    return Server.problemResponse(new PaymentUnavailableError({ detail: 'channel state is unavailable', retryAfter: 2 }))
  }
}

/**
 * The operator listing as a Hono handler, for a seller to mount.
 * @example
 * app.get('/__mpp/channels', channelListing({ secret: (c) => c.env.MPP_OPERATOR_SECRET, channels: (c) => c.env.CHANNEL_STATE, payers: (c) => c.env.PAYER_CHANNELS }))
 */
export function channelListing<E extends Env>(options: ChannelListing<E>): Handler<E> {
  return (c) => listChannels(c.req.raw, { secret: options.secret(c), channels: options.channels(c), payers: options.payers(c) })
}

// Constant time: both sides are hashed first, so neither length nor content leaks through timing.
async function sameSecret(presented: string, secret: string): Promise<boolean> {
  const digest = async (text: string) => new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)))
  const [a, b] = await Promise.all([digest(presented), digest(secret)])
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0 && presented.length > 0
}
