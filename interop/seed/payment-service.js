#!/usr/bin/env node
// The seed's cote payment service, as node-webinar-examples'
// cote-example/payment-service.js behaves, on Node's own http module instead
// of restify:
//
// - GET /pay/:cardno sends {type: 'validate', cardno} with a cote Requester
//   named 'payment requester' and waits for the answer (cote 1.2.0 waits as
//   long as it takes: no validator, no answer yet);
// - it looks only at the error: none means "<cardno> validated", an error
//   means "<cardno> validation failed: " + err (string concatenation, so a
//   bare string error reads well and an object reads "[object Object]");
// - the answer is that text as a JSON string with status 200 either way, as
//   restify's res.send(string) did.
//
//   PORT=3003 node interop/seed/payment-service.js   (default port 8080)
//
// It listens on 127.0.0.1 only. Discovery timings come from cote's
// environment variables (COTE_HELLO_INTERVAL, ...).

'use strict'

require('./lan-guard')('payment-service.js')

const http = require('http')
const cote = require('cote')

const port = Number(process.env.PORT || 8080)

const paymentRequester = new cote.Requester({ name: 'payment requester' })

function send(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  })
  res.end(text)
}

const server = http.createServer((req, res) => {
  const match = /^\/pay\/([^/?#]+)$/.exec(req.url.split('?')[0])
  if (req.method !== 'GET' || !match) {
    send(res, 404, { code: 'ResourceNotFound', message: `${req.url} does not exist` })
    return
  }
  let cardno
  try {
    cardno = decodeURIComponent(match[1])
  } catch (e) {
    send(res, 400, { code: 'BadRequest', message: 'malformed card number' })
    return
  }
  console.log('paying with', cardno)

  paymentRequester.send({ type: 'validate', cardno }, (err, result) => {
    console.log(err, cardno, 'validated')
    if (err) send(res, 200, cardno + ' validation failed: ' + err)
    else send(res, 200, cardno + ' validated')
  })
})

server.listen(port, '127.0.0.1', () => {
  console.log('PaymentService listening at http://127.0.0.1:%d', server.address().port)
})

process.on('SIGTERM', () => process.exit(0))
