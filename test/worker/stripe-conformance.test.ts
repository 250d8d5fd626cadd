import { describe, expect, it } from 'vitest'
import { commands } from '../../tools/conformance-adapter/stripe.js'
import vector from '../fixtures/vectors/stripe-external-id-binding.json'

describe('conformance: stripe-external-id-binding.json', () => {
  const command = commands[vector.commands.generate]!

  it('behavior: the adapter serves the vector file\'s operation', () => {
    expect(vector.commands.generate).toBe('verify-stripe-external-id-binding')
    expect(command).toBeTypeOf('function')
  })

  for (const scenario of vector.scenarios) {
    it(`vector: ${scenario.name}`, async () => {
      expect(await command(scenario.input)).toEqual(scenario.expected)
    })
  }
})
