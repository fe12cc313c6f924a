// A raftsched webhook receiver: verify the signature, skip repeats by event id, act once.
// Run: RAFTSCHED_WEBHOOK_SECRET=... node receiver.js 8099   (Node.js 18+, no packages)
const crypto = require("node:crypto");
const http = require("node:http");

const secret = process.env.RAFTSCHED_WEBHOOK_SECRET;
const seen = new Set(); // keep these in your database in real life: delivery is at least once

http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const good = Buffer.from("sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex"));
    const got = Buffer.from(req.headers["x-raftsched-signature"] || "");
    if (got.length !== good.length || !crypto.timingSafeEqual(got, good)) return res.writeHead(401).end();
    const event = JSON.parse(body); // a repeat carries the same id: answer 2xx, do nothing
    if (!seen.has(event.id)) { seen.add(event.id); console.log(event.type, JSON.stringify(event.data)); }
    res.writeHead(204).end(); // any 2xx: delivered; anything else: retried with backoff
  });
}).listen(Number(process.argv[2] || 8099), "127.0.0.1");
