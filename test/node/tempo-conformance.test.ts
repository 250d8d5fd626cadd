/**
 * The tempo operations of the conformance adapter as the suite runs them: one process per request, the JSON
 * ABI on stdin. One scenario per vector file proves the wiring (process spawns are slow); every scenario of
 * every file runs in-process in test/worker/tempo-vectors.test.ts.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const root = new URL('../../', import.meta.url)
const tsx = new URL('node_modules/.bin/tsx', root).pathname

function scenario(file: string, name: string): { input: unknown; expected: { ok: boolean; value?: unknown; error?: { type: string; messageContains?: string } } } {
  const vectors = JSON.parse(readFileSync(new URL(`test/fixtures/vectors/${file}.json`, root), 'utf8')) as { scenarios: { name: string }[] }
  return vectors.scenarios.find((s) => s.name === name) as never
}

function run(op: string, input: unknown): Promise<{ ok: boolean; value?: unknown; error?: { type: string; message: string } }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, ['tools/conformance-adapter/main.ts'], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.on('error', reject)
    child.on('close', () => {
      try {
        resolve(JSON.parse(stdout))
      } catch (error) {
        reject(error)
      }
    })
    child.stdin.end(JSON.stringify({ schema: 1, op, input }))
  })
}

const cases: [string, string, string][] = [
  ['tempo-receipt-verification', 'tempo.receipt.verify', 'matching_challenge_bound_memo'],
  ['tempo-transaction-verification', 'tempo.transaction.verify', 'plain_transfer_without_challenge_bound_memo'],
  ['tempo-fee-payer-cosign', 'tempo.fee_payer.cosign', 'valid_fee_payer_envelope_cosigned'],
  ['tempo-proof', 'tempo.proof.typed_data', 'zero_amount_proof_shape'],
]

describe.concurrent('tempo conformance operations through the adapter process', () => {
  for (const [file, op, name] of cases) {
    it(`vector: ${file} / ${name}`, async () => {
      const { input, expected } = scenario(file, name)
      const answer = await run(op, input)
      if (expected.ok) {
        expect(answer).toEqual({ ok: true, value: expected.value })
      } else {
        expect(answer.ok).toBe(false)
        expect(answer.error?.type).toBe(expected.error!.type)
        if (expected.error!.messageContains) expect(answer.error?.message).toContain(expected.error!.messageContains)
      }
    })
  }
})
