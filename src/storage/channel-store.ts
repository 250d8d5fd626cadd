/** @module A ChannelStore over ChannelState (one object per channel) and PayerChannels (one per payer) Durable Objects. */
import type { Channel, ChannelStore } from '../core/ChannelStore.js'
import type { ChannelState } from './ChannelState.js'
import type { PayerChannels } from './PayerChannels.js'

/**
 * Builds the channel store: each channel is its own object, named by its lowercase id, so every channel's vouchers
 * and charges are serialized in one place and different channels never wait on each other.
 * @example
 * const channels = channelStore(env.CHANNEL_STATE, env.PAYER_CHANNELS)
 */
export function channelStore(channels: DurableObjectNamespace<ChannelState>, payers?: DurableObjectNamespace<PayerChannels> | undefined): ChannelStore {
  return {
    channel: (channelId) => channels.get(channels.idFromName(channelId.toLowerCase())) as unknown as Channel,
    indexPayer: async (payer, channelId) => {
      if (payers) await payers.get(payers.idFromName(payer.toLowerCase())).add(channelId)
    },
    payerChannels: async (payer) => (payers ? (await payers.get(payers.idFromName(payer.toLowerCase())).list(20)).map((row) => row.channelId) : []),
  }
}
