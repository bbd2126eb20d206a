// A test OTLP/HTTP collector: decodes every POST /v1/traces with OpenTelemetry's own
// protobuf definitions (the generated root of @opentelemetry/otlp-transformer), an
// implementation independent of our encoder, and appends each span as one JSON line to
// the output file. Usage: node collector.cjs <node_modules dir> <output file>
// It listens on 127.0.0.1, on a port the kernel picks, and says so on stdout the way our
// servers do ("serving on port N"), so that the test starts it like one of them.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const [modules, out] = process.argv.slice(2);
const root = require(path.join(modules,
  '@opentelemetry/otlp-transformer/build/src/generated/root'));
const Request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const Response = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

const hex = (b) => Buffer.from(b || []).toString('hex');

function value(v) {
  if (v.stringValue !== undefined && v.stringValue !== null) return v.stringValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  return null;
}

function attrs(list) {
  const o = {};
  for (const kv of list || []) o[kv.key] = value(kv.value || {});
  return o;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/v1/traces' ||
        req.headers['content-type'] !== 'application/x-protobuf') {
      res.writeHead(400).end();
      return;
    }
    let msg;
    try {
      msg = Request.decode(Buffer.concat(chunks));
    } catch (e) {
      // Anything our encoder gets wrong lands here and fails the test: it finds no spans.
      fs.appendFileSync(out, JSON.stringify({ decode_error: String(e) }) + '\n');
      res.writeHead(400).end();
      return;
    }
    const lines = [];
    for (const rs of msg.resourceSpans) {
      const resource = attrs(rs.resource && rs.resource.attributes);
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          lines.push(JSON.stringify({
            service: resource['service.name'],
            service_version: resource['service.version'],
            trace_id: hex(s.traceId),
            span_id: hex(s.spanId),
            parent_id: hex(s.parentSpanId),
            name: s.name,
            kind: s.kind,
            start: String(s.startTimeUnixNano),
            end: String(s.endTimeUnixNano),
            error: !!(s.status && s.status.code === 2),
            attributes: attrs(s.attributes),
          }));
        }
      }
    }
    if (lines.length > 0) fs.appendFileSync(out, lines.join('\n') + '\n');
    res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
    res.end(Buffer.from(Response.encode(Response.create({})).finish()));
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ message: `serving on port ${server.address().port}`,
                               port: server.address().port }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
