import { describe, expect, it } from 'vitest'
import { channelReserveRuntime, streamChannelCreation } from '../../src/testing/escrow-bytecode.js'

describe('escrow stand-ins', () => {
  it('the committed bytecode is a fresh build of contracts/*.sol (run scripts/build-escrows.ts after editing them)', () => {
    // The test global setup compiles the sources with solc; the session chains run that build.
    const fresh = JSON.parse(process.env.MPP_TEST_ESCROW_BUILD ?? '{}') as Record<string, string>
    expect(fresh.channelReserveRuntime).toMatch(/^0x[0-9a-f]{1000,}$/)
    expect(fresh.streamChannelCreation).toMatch(/^0x[0-9a-f]{1000,}$/)
    expect(channelReserveRuntime).toBe(fresh.channelReserveRuntime)
    expect(streamChannelCreation).toBe(fresh.streamChannelCreation)
  })
})
