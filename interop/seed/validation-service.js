#!/usr/bin/env node
// The seed's cote validation service, as node-webinar-examples'
// cote-example/validation-service.js behaves: a cote Responder named
// 'validation service' that logs the card number of each 'validate' request
// and answers a bare true, whatever the number (cb(null, true)).
//
//   node interop/seed/validation-service.js
//
// Discovery timings come from cote's environment variables
// (COTE_HELLO_INTERVAL, COTE_CHECK_INTERVAL, COTE_NODE_TIMEOUT).

'use strict'

require('./lan-guard')('validation-service.js')

const cote = require('cote')

const validationService = new cote.Responder({ name: 'validation service' })

validationService.on('validate', (req, cb) => {
  console.log('validating', req.cardno)
  cb(null, true)
})

validationService.on('ready', () => console.log('validation service ready'))

process.on('SIGTERM', () => process.exit(0))
