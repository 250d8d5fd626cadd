/** A bare Hono worker serving the bench route unpaid: the ceiling the payment middlewares are measured against. */
import { Hono } from 'hono'

const app = new Hono()
app.get('/paid', (c) => c.json({ ok: true }))

export default app
