// The whole DNS front-end suite (dns-server.test.ts, fuzz included) again with UDP on node:dgram
// (dns.udpBatch: off). The suite itself runs on the batched path, the default where the addon built.
process.env.APPFENCE_TEST_UDP_BATCH = 'off';
await import('./dns-server.test.js');
