// /graphql checked by the reference implementation, graphql-js, and the GraphQL over HTTP
// audits of graphql-http, against a running cleave (started by test_graphql.c):
//  1. the standard introspection query (getIntrospectionQuery) runs against us, and
//     buildClientSchema + validateSchema accept its result;
//  2. printSchema of that schema equals docs/schema.graphql (UPDATE=1 rewrites the file);
//  3. every query of corpus.json is validated by graphql-js against that schema, then
//     sent to us: one graphql-js calls valid must execute with the expected data (a
//     data exactly, the errors listed by a subset match), one it rejects must be rejected
//     by us (400, no data) with an error at the location of graphql-js's first error;
//  4. graphql-http's serverAudits against the endpoint: every MUST passes, and every
//     SHOULD or MAY that fails is one of WAIVED below, each with its reason.
//
// usage: node graphql_check.mjs NODE_DIR SOURCE_DIR
// environment: GQL_URL (http://127.0.0.1:PORT/graphql), GQL_TOKEN_ADMIN, GQL_TOKEN_ALICE,
// GQL_TOKEN_BOB (bearer tokens of the seeded users), GQL_ORDER (one of alice's orders).
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const [nodeDir, sourceDir] = process.argv.slice(2);
if (!nodeDir || !sourceDir) {
  console.error('usage: node graphql_check.mjs NODE_DIR SOURCE_DIR');
  process.exit(2);
}
const require = createRequire(path.join(nodeDir, 'package.json'));
const graphql = await import(pathToFileURL(require.resolve('graphql')).href);
const gqlHttp = await import(pathToFileURL(require.resolve('graphql-http')).href);

const url = process.env.GQL_URL;
const tokens = {
  admin: process.env.GQL_TOKEN_ADMIN,
  alice: process.env.GQL_TOKEN_ALICE,
  bob: process.env.GQL_TOKEN_BOB,
};
let failures = 0;
function check(cond, what, detail) {
  console.log(`${cond ? 'ok' : 'FAIL'} ${what}`);
  if (!cond) {
    failures++;
    if (detail !== undefined) console.log(`  ${JSON.stringify(detail)}`);
  }
}

// One connection per request (no keep-alive): the server closes idle connections after
// CLEAVE_HTTP_KEEP_ALIVE_MS, and a pooled connection closing as it is reused would fail a
// request for a reason that is not the endpoint's.
function post(body, who) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json',
  };
  if (who && who !== 'anonymous') headers.authorization = `Bearer ${tokens[who]}`;
  const data = JSON.stringify(body);
  headers['content-length'] = Buffer.byteLength(data);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, type: res.headers['content-type'],
            json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

// 1. Introspection.
const intro = await post({ query: graphql.getIntrospectionQuery() });
check(intro.status === 200 && !intro.json.errors, 'the standard introspection query runs',
  intro.json.errors);
let schema;
try {
  schema = graphql.buildClientSchema(intro.json.data);
  check(true, 'buildClientSchema accepts our introspection');
} catch (e) {
  check(false, `buildClientSchema accepts our introspection: ${e.message}`);
  process.exit(1);
}
const problems = graphql.validateSchema(schema);
check(problems.length === 0, 'validateSchema finds nothing wrong', problems.map(String));

// 2. docs/schema.graphql is current.
const printed = `${graphql.printSchema(schema)}\n`;
const schemaFile = path.join(sourceDir, 'docs', 'schema.graphql');
if (process.env.UPDATE === '1') {
  writeFileSync(schemaFile, printed);
  console.log(`wrote ${schemaFile}`);
}
let committed = '';
try {
  committed = readFileSync(schemaFile, 'utf8');
} catch {
  committed = '';
}
check(committed === printed,
  'docs/schema.graphql is printSchema of the served schema (UPDATE=1 ctest -R graphql rewrites it)');

// 3. The corpus.
// Whether actual has everything expected has: objects by key, arrays item by item.
function subset(expected, actual) {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length &&
      expected.every((e, i) => subset(e, actual[i]));
  }
  if (expected !== null && typeof expected === 'object') {
    return actual !== null && typeof actual === 'object' &&
      Object.keys(expected).every((k) => subset(expected[k], actual[k]));
  }
  return expected === actual;
}
// %ORDER%: one of alice's orders, made by test_graphql.c.
function substitute(value) {
  if (value === undefined) return undefined;
  return JSON.parse(JSON.stringify(value).replaceAll('%ORDER%', process.env.GQL_ORDER ?? ''));
}
const corpus = JSON.parse(readFileSync(path.join(sourceDir, 'tests', 'graphql', 'corpus.json'),
  'utf8'));
let nvalid = 0;
let ninvalid = 0;
for (const c of corpus) {
  let errors;
  c.query = substitute(c.query);
  try {
    errors = graphql.validate(schema, graphql.parse(c.query));
  } catch (e) {
    errors = [e];
  }
  const res = await post({ query: c.query, variables: substitute(c.variables),
    operationName: c.operationName }, c.as ?? 'anonymous');
  if (c.valid === false || errors.length > 0) {
    ninvalid++;
    check(c.valid === false && errors.length > 0, `${c.name}: graphql-js rejects it`,
      errors.map(String));
    const want = errors[0]?.locations?.[0];
    const ours = (res.json.errors ?? []).flatMap((e) => e.locations ?? []);
    check(res.status === 400 && res.json.data === undefined &&
      ours.some((l) => want && l.line === want.line && l.column === want.column),
    `${c.name}: we reject it at ${want?.line}:${want?.column} as graphql-js does`,
    { graphqljs: errors.map(String), ours: res.json });
    continue;
  }
  nvalid++;
  const expected = substitute(c.data);
  check(res.status === 200 && isDeepStrictEqual(expected, res.json.data) &&
    subset(c.errors ?? [], (res.json.errors ?? []).slice(0, (c.errors ?? []).length)) &&
    (c.errors !== undefined || res.json.errors === undefined),
  `${c.name}: valid, executes with the expected data`, res.json);
}
check(nvalid >= 20 && ninvalid >= 20 && corpus.length >= 40,
  `the corpus has ${nvalid} valid and ${ninvalid} invalid queries (at least 20 of each)`);

// 4. The GraphQL over HTTP audits.
// None is waived today: an audit that fails must be fixed, or listed here with its reason.
const WAIVED = {};
const results = await gqlHttp.auditServer({ url });
for (const r of results) {
  const waived = WAIVED[r.name];
  if (r.status === 'ok') {
    check(true, `audit ${r.id}: ${r.name}`);
  } else if (r.status === 'error') {
    check(false, `audit ${r.id}: ${r.name} (MUST)`, r.reason);
  } else {
    check(waived !== undefined, `audit ${r.id}: ${r.name} (${r.status}${waived ? ', waived' : ''})`,
      r.reason);
  }
}

console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
