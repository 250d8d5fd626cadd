import { describe, expect, it } from 'vitest'
import { isPaymentError } from '../../src/core/Errors.js'
import { commands } from '../../tools/conformance-adapter/tempo.js'
import cosign from '../fixtures/vectors/tempo-fee-payer-cosign.json'
import proof from '../fixtures/vectors/tempo-proof.json'
import receipt from '../fixtures/vectors/tempo-receipt-verification.json'
import transaction from '../fixtures/vectors/tempo-transaction-verification.json'

type Scenario = { name: string; input: unknown; expected: { ok: boolean; value?: unknown; error?: { type: string; messageContains?: string } } }

// The answer the adapter gives for a command: its value, or the PaymentError mapped the way main.ts maps it.
async function answer(operation: string, input: unknown) {
  try {
    return { ok: true, value: await commands[operation]!(input) }
  } catch (error) {
    if (!isPaymentError(error)) throw error
    return { ok: false, error: { type: 'verification_error', message: error.message } }
  }
}

for (const file of [receipt, transaction, cosign, proof] as { commands: { operation: string }; scenarios: Scenario[] }[]) {
  const operation = file.commands.operation
  describe(`conformance: ${operation}`, () => {
    it('behavior: the adapter serves the operation', () => {
      expect(commands[operation]).toBeTypeOf('function')
    })
    for (const scenario of file.scenarios) {
      it(`vector: ${scenario.name}`, async () => {
        const got = await answer(operation, scenario.input)
        if (scenario.expected.ok) {
          expect(got).toEqual({ ok: true, value: scenario.expected.value })
        } else {
          expect(got.ok).toBe(false)
          expect(got.error?.type).toBe(scenario.expected.error!.type)
          if (scenario.expected.error!.messageContains) expect(got.error?.message).toContain(scenario.expected.error!.messageContains)
        }
      })
    }
  })
}
