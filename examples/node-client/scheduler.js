// What client.js and stream.js share: the Scheduler service loaded from the project's own proto
// files (RAFTSCHED_PROTO_DIR, default ../../proto) and the channel credentials (RAFTSCHED_TLS_DIR
// holding ca.crt, client.crt and client.key, as `raftsched certs init` writes them; default: no TLS).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function loadScheduler() {
  const protoDir = process.env.RAFTSCHED_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
  const definition = protoLoader.loadSync('raftsched/v1/scheduler.proto', {
    includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).raftsched.v1.Scheduler;
}

function credentials() {
  const dir = process.env.RAFTSCHED_TLS_DIR;
  if (!dir) return grpc.credentials.createInsecure();
  const read = (name) => fs.readFileSync(path.join(dir, name));
  return grpc.credentials.createSsl(read('ca.crt'), read('client.key'), read('client.crt'));
}

module.exports = { loadScheduler, credentials };
