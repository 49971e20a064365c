// Network safety for the seed-style services: cote 1.2.0 always broadcasts
// discovery to 255.255.255.255, the whole LAN. Refuse to start while any
// network interface besides loopback exists, unless the caller chose a
// multicast address (COTE_MULTICAST_ADDRESS). The interop tests run these
// services inside a private network namespace with only loopback up.

'use strict'

const os = require('os')

module.exports = function refuseToBroadcastOnALan(program) {
  if (process.env.COTE_MULTICAST_ADDRESS) return
  const external = Object.entries(os.networkInterfaces())
    .filter(([, addrs]) => addrs.some(a => !a.internal))
    .map(([name]) => name)
  if (external.length) {
    process.stderr.write(
      `${program}: refusing to broadcast discovery to 255.255.255.255 with ` +
        `non-loopback interfaces (${external.join(', ')}); run it inside a private ` +
        'network namespace\n'
    )
    process.exit(1)
  }
}
