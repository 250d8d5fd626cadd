/**
 * Starts the real services the suite needs (a Tempo-mode anvil chain, the session chain and its factory of
 * private chains, the local Stripe API server) on the ports vitest.config.ts chose, and stops them afterwards.
 * The session chains run a fresh build of the channel reserve stand-in's source; a test checks the committed build is
 * the same.
 */
import { compileChannelReserve } from '../../scripts/build-channel-reserve.js'
import { startTestServices } from '../../src/testing/node/services.js'

export default async function setup() {
  const runtime = compileChannelReserve()
  process.env.MPP_TEST_CHANNEL_RESERVE_RUNTIME = runtime
  return startTestServices({ sessions: { runtime } })
}
