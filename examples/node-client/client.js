#!/usr/bin/env node
// A raftsched client in Node.js: submit one job with an idempotency key, then wait for it with
// WatchJob until it ends. It follows the client rules of docs/api.md:
//
//  - any node accepts any call; a node that is not the leader may name it in the trailing
//    metadata key `raftsched-leader`, and the call goes there next;
//  - UNAVAILABLE means "not applied": try the next node, with a growing backoff per round;
//  - DEADLINE_EXCEEDED may or may not have applied: a submit is retried with the SAME
//    idempotency key, so the cluster keeps one job whatever happened;
//  - RESOURCE_EXHAUSTED means the leader is overloaded: back off, then retry;
//  - a WatchJob stream cut by a node failure is reopened elsewhere (it starts with the current
//    state, so nothing is missed).
//
// Usage: node client.js [--cluster HOST:PORT,...] [--handler noop] [--payload TEXT]
//                       [--key IDEMPOTENCY_KEY] [--timeout SECONDS]
// Environment: RAFTSCHED_CLUSTER (the addresses), RAFTSCHED_PROTO_DIR (the directory holding
// raftsched/v1/*.proto; default: the repository's proto/), RAFTSCHED_TLS_DIR (ca.crt,
// client.crt and client.key, as written by `raftsched certs init`; default: no TLS).
// Prints one JSON line per state change and exits 0 when the job SUCCEEDED, 1 otherwise.
'use strict';

const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const { loadScheduler, credentials } = require('./scheduler');

const TERMINAL = new Set(['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED', 'JOB_STATE_SKIPPED']);
const RETRY = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED]);
const ATTEMPT_TIMEOUT_MS = 5000;

function parseArgs(argv) {
  const opts = {
    cluster: process.env.RAFTSCHED_CLUSTER || '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
    handler: 'noop', payload: '', key: crypto.randomUUID(), timeout: 60,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in opts) || argv[i + 1] === undefined) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    opts[name] = name === 'timeout' ? Number(argv[i + 1]) : argv[i + 1];
  }
  opts.cluster = opts.cluster.split(',').map((a) => a.trim()).filter(Boolean);
  return opts;
}

// One client per address, created on first use; the last address that answered goes first.
class Cluster {
  constructor(addresses, Scheduler) {
    this.addresses = addresses;
    this.Scheduler = Scheduler;
    this.clients = new Map();
    this.leader = '';
  }

  client(address) {
    if (!this.clients.has(address)) this.clients.set(address, new this.Scheduler(address, credentials()));
    return this.clients.get(address);
  }

  order() {
    return this.leader ? [this.leader, ...this.addresses.filter((a) => a !== this.leader)] : [...this.addresses];
  }

  close() {
    for (const c of this.clients.values()) c.close();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function leaderHint(err) {
  const values = err && err.metadata ? err.metadata.get('raftsched-leader') : [];
  return values.length ? String(values[0]) : '';
}

function unary(client, method, request, timeoutMs) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + timeoutMs }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// Call `method` until it succeeds, a non-retryable error comes back, or the deadline passes.
async function callWithRetries(cluster, method, request, deadline) {
  let round = 0;
  let lastError = null;
  while (Date.now() < deadline) {
    const queue = cluster.order();
    while (queue.length) {
      const address = queue.shift();
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const response = await unary(cluster.client(address), method, request, Math.min(left, ATTEMPT_TIMEOUT_MS));
        cluster.leader = address;
        return response;
      } catch (err) {
        lastError = err;
        const hint = leaderHint(err);
        if (!RETRY.has(err.code) && !(err.code === grpc.status.FAILED_PRECONDITION && hint)) throw err;
        log({ event: 'retry', method, address, code: grpc.status[err.code], details: err.details });
        if (err.code === grpc.status.RESOURCE_EXHAUSTED) {
          cluster.leader = address; // overloaded: the same node again, after the backoff
          break;
        }
        if (hint && hint !== address) {
          if (queue.includes(hint)) queue.splice(queue.indexOf(hint), 1);
          queue.unshift(hint); // the node named the leader: go there next
        }
      }
    }
    round += 1;
    await sleep(Math.min(1000, 50 * 2 ** round) * (0.5 + Math.random() / 2));
  }
  throw lastError || new Error(`${method}: no answer before the deadline`);
}

// Follow the job's state changes until a terminal state; reopen the stream when it is cut.
async function watchUntilDone(cluster, jobId, deadline) {
  let last = null;
  let round = 0;
  while (Date.now() < deadline) {
    for (const address of cluster.order()) {
      try {
        const ended = await new Promise((resolve, reject) => {
          let latest = null;
          const stream = cluster.client(address).WatchJob({ id: jobId }, { deadline });
          stream.on('data', (job) => {
            latest = job;
            last = job;
            log({ event: 'state', id: job.id, state: job.state.replace('JOB_STATE_', '') });
            if (TERMINAL.has(job.state)) {
              stream.cancel();
              resolve(job);
            }
          });
          stream.on('error', (err) => (err.code === grpc.status.CANCELLED && latest && TERMINAL.has(latest.state)
            ? resolve(latest) : reject(err)));
          stream.on('end', () => resolve(latest));
        });
        if (ended && TERMINAL.has(ended.state)) return ended;
      } catch (err) {
        if (!RETRY.has(err.code) && err.code !== grpc.status.FAILED_PRECONDITION) throw err;
        log({ event: 'retry', method: 'WatchJob', address, code: grpc.status[err.code], details: err.details });
      }
    }
    round += 1;
    await sleep(Math.min(1000, 50 * 2 ** round));
  }
  throw new Error(`job ${jobId} did not finish in time (last state ${last ? last.state : 'unknown'})`);
}

function log(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const cluster = new Cluster(opts.cluster, loadScheduler());
  const deadline = Date.now() + opts.timeout * 1000;
  try {
    const spec = { handler: opts.handler, payload: Buffer.from(opts.payload), idempotency_key: opts.key, name: 'node-client' };
    const submitted = await callWithRetries(cluster, 'SubmitJob', { spec }, deadline);
    log({ event: 'submitted', id: submitted.job.id, existed: submitted.existed, key: opts.key });
    const job = await watchUntilDone(cluster, submitted.job.id, deadline);
    const state = job.state.replace('JOB_STATE_', '');
    log({ event: 'done', id: job.id, state, attempts: job.attempts.length });
    return state === 'SUCCEEDED' ? 0 : 1;
  } finally {
    cluster.close();
  }
}

main().then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`raftsched node client: ${err.code !== undefined ? `${grpc.status[err.code]}: ` : ''}${err.details || err.message}\n`);
  process.exitCode = 2;
});
