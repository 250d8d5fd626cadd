/**
 * The rules of draft-payment-discovery-00 as a checker: "Required Top-Level Fields", "x-service-info"
 * (with its appendix JSON Schema), "x-payment-info" (single-offer or multi-offer form, appendix JSON
 * Schema with additionalProperties false), "Payment Offer Object" and "402 Response Declaration".
 * Returns every violation as "path: message".
 */
import * as v from 'valibot'

const Amount = v.nullable(v.pipe(v.string(), v.regex(/^(0|[1-9][0-9]*)$/, 'amount must be base-unit digits without leading zeros')))
const Offer = v.strictObject({
  intent: v.picklist(['charge', 'session']),
  method: v.string(),
  amount: Amount,
  currency: v.optional(v.string()),
  description: v.optional(v.string()),
})
const PaymentInfo = v.union([Offer, v.strictObject({ offers: v.pipe(v.array(Offer), v.minLength(1)) })])
const Uri = v.pipe(v.string(), v.url())
const ServiceInfo = v.object({
  categories: v.optional(v.array(v.string())),
  docs: v.optional(v.object({ apiReference: v.optional(Uri), homepage: v.optional(Uri), llms: v.optional(Uri) })),
})
const Document = v.object({
  openapi: v.pipe(v.string(), v.regex(/^3\./, 'openapi must be a 3.x version')),
  info: v.object({ title: v.pipe(v.string(), v.minLength(1)), version: v.pipe(v.string(), v.minLength(1)) }),
  'x-service-info': v.optional(ServiceInfo),
  paths: v.pipe(
    v.record(v.string(), v.record(v.string(), v.unknown())),
    v.check((paths) => Object.keys(paths).length > 0, 'paths must hold at least one path'),
  ),
})

const operations = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

/** Every violation of the discovery rules in a document. */
export function discoveryViolations(document: unknown): string[] {
  const errors: string[] = []
  const issues = (prefix: string, result: v.SafeParseResult<any>) => {
    if (!result.success) for (const issue of result.issues) errors.push(`${prefix}${issue.path?.map((p: { key: unknown }) => String(p.key)).join('.') ?? ''}: ${issue.message}`)
  }
  const doc = v.safeParse(Document, document)
  issues('', doc)
  if (!doc.success) return errors
  let payable = 0
  for (const [path, item] of Object.entries(doc.output.paths)) {
    if (!path.startsWith('/')) errors.push(`paths.${path}: a path must start with "/"`)
    for (const [verb, operation] of Object.entries(item)) {
      if (!operations.includes(verb) || typeof operation !== 'object' || operation === null) continue
      const op = operation as Record<string, unknown>
      const info = op['x-payment-info']
      if (info === undefined) continue
      payable++
      issues(`paths.${path}.${verb}.x-payment-info.`, v.safeParse(PaymentInfo, info))
      const responses = op.responses as Record<string, unknown> | undefined
      if (!responses || !('402' in responses)) errors.push(`paths.${path}.${verb}.responses: a payable operation must declare a 402 response`)
    }
  }
  if (payable === 0) errors.push('paths: no payable operation')
  return errors
}
