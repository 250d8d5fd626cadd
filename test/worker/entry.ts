/** Test worker entry: exports the Durable Object classes so tests get real bindings. */
import { ChannelState as BaseChannelState } from '../../src/storage/ChannelState.js'
import type { SessionMethod } from '../../src/core/SessionMethod.js'

export { ReplayGuard } from '../../src/storage/ReplayGuard.js'
export { IdempotencyCache } from '../../src/storage/IdempotencyCache.js'
export { SponsorGate } from '../../src/storage/SponsorGate.js'
export { PayerChannels } from '../../src/storage/PayerChannels.js'
export { SenderLimit } from '../../src/storage/SenderLimit.js'

/**
 * The channel object as a deployment subclasses it, with settlement on: a test that wants the alarm to settle writes
 * the payee's settings into the object's storage (`settlement:config`), as a deployment would take them from its env.
 */
export class ChannelState extends BaseChannelState {
  protected override async settlement(): Promise<SessionMethod | undefined> {
    const config = this.ctx.storage.kv.get<{ chainId: number; recipient: string; privateKey: string; rpcUrl: string }>('settlement:config')
    // Loaded only when used: every test's worker starts without the chain client.
    return config && (await import('../../src/methods/tempo/session-method.js')).tempoSession({ ...config, pollIntervalMs: 100 })
  }
}

export default {
  fetch: () => new Response('mpp-edge test worker', { status: 404 }),
} satisfies ExportedHandler
