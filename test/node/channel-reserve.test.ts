import { describe, expect, it } from 'vitest'
import { channelReserveRuntime } from '../../src/testing/node/channel-reserve.bytecode.js'

describe('channel reserve stand-in', () => {
  it('the committed bytecode is a fresh build of contracts/ChannelReserve.sol (run scripts/build-channel-reserve.ts after editing it)', () => {
    // The test global setup compiles the source with solc and places that build on the session chains.
    const fresh = process.env.MPP_TEST_CHANNEL_RESERVE_RUNTIME
    expect(fresh).toMatch(/^0x[0-9a-f]{1000,}$/)
    expect(channelReserveRuntime).toBe(fresh)
  })
})
