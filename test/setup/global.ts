/**
 * Starts the real services the suite needs (a Tempo-mode anvil chain, the local Stripe API server)
 * on the ports vitest.config.ts chose, and stops them afterwards.
 */
import { startTestServices } from '../../src/testing/node/services.js'

export default () => startTestServices()
