/**
 * Starts the real services the suite needs (a Tempo-mode anvil chain, the session chain and its factory of
 * private chains, the local Stripe API server, a plain EVM chain with the EIP-3009 token stand-in) on the ports vitest.config.ts chose, and stops them afterwards.
 * The session chains run a fresh build of the escrow stand-ins' sources; a test checks the committed build is
 * the same.
 */
import { compileEscrows } from '../../scripts/build-escrows.js'
import { startTestServices } from '../../src/testing/node/services.js'

export default async function setup() {
  const build = compileEscrows()
  process.env.MPP_TEST_ESCROW_BUILD = JSON.stringify(build)
  return startTestServices({ sessions: { runtime: build.channelReserveRuntime }, evm: true })
}
