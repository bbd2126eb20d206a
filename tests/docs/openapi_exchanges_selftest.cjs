'use strict';
/*
 * Usage: node openapi_exchanges_selftest.cjs SPEC
 *
 * The response check must be able to fail: each case hands it a response the document
 * does not allow (made by hand, no server needed) and expects the error that names the
 * operation, the status and what is wrong; a right response must pass.
 */
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const { createValidator } = require('./openapi_exchanges.cjs');

const spec = process.argv[2];
const validator = createValidator(fs.readFileSync(spec, 'utf8'));

function product(overrides) {
    return {
        id: 7, sku: 'MUG-1', name: 'Blue mug', description: null,
        price: { amount: 1250, currency: 'EUR' }, category: 'kitchen', tags: ['mug'],
        created_at: '2026-01-02T03:04:05.678Z', updated_at: '2026-01-02T03:04:05.678Z',
        version: 1, ...overrides,
    };
}

function exchange(method, p, status, contentType, body) {
    const ex = { method, path: p, status, content_type: contentType, body_len: 0 };
    if (body !== undefined) {
        ex.body = body;
        ex.body_len = JSON.stringify(body).length;
    }
    return ex;
}

const problem = { type: 'urn:cleave:problem:not-found', title: 'the resource does not exist',
                  status: 404, detail: 'no route matches this path', instance: '/nope',
                  request_id: '0123456789abcdef0123456789abcdef' };

test('a response the document allows passes', () => {
    const r = validator.check(exchange('GET', '/api/v1/products/7', 200, 'application/json', product()));
    assert.equal(r.operation, 'getProduct (GET /api/v1/products/{id})');
    assert.deepEqual(r.errors, []);
});

test('a field of the wrong type fails, naming it', () => {
    const r = validator.check(exchange('GET', '/api/v1/products/7', 200, 'application/json',
                                       product({ price: { amount: '12.50', currency: 'EUR' } })));
    assert.deepEqual(r.errors, ['status 200: /price/amount must be integer']);
});

test('a field the document does not list fails', () => {
    const r = validator.check(exchange('GET', '/api/v1/products/7', 200, 'application/json',
                                       product({ discount: 5 })));
    assert.deepEqual(r.errors, ['status 200: (body) must NOT have unevaluated properties (discount)']);
});

test('a required field that is missing fails', () => {
    const body = product();
    delete body.sku;
    const r = validator.check(exchange('GET', '/api/v1/products/7', 200, 'application/json', body));
    assert.deepEqual(r.errors, ["status 200: (body) must have required property 'sku'"]);
});

test('a sparse fieldset answers exactly the fields asked for', () => {
    const sparse = { id: 7, name: 'Blue mug' };
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products/7?fields=name', 200,
                                              'application/json', sparse)).errors, []);
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products/7?fields=name', 200,
                                              'application/json', { ...sparse, sku: 'MUG-1' })).errors,
                     ['status 200: (body) has sku, which the fieldset does not name']);
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products/7?fields=name,sku', 200,
                                              'application/json', sparse)).errors,
                     ["status 200: (body) must have required property 'sku'"]);
    /* Without fields= every field is still required. */
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products/7', 200, 'application/json',
                                              sparse)).errors.length, 8);
});

test('a sparse fieldset trims the items of a page, not the page', () => {
    const page = { items: [{ id: 7, sku: 'MUG-1' }], next_cursor: null };
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products?fields=sku', 200,
                                              'application/json', page)).errors, []);
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products?fields=sku', 200,
                                              'application/json', { items: page.items })).errors,
                     ["status 200: (body) must have required property 'next_cursor'"]);
    assert.deepEqual(validator.check(exchange('GET', '/api/v1/products?fields=sku', 200, 'application/json',
                                              { ...page, items: [{ id: 7 }] })).errors,
                     ["status 200: /items/0 must have required property 'sku'"]);
});

test('an undocumented status fails', () => {
    const r = validator.check(exchange('GET', '/api/v1/products', 201, 'application/json', { items: [] }));
    assert.deepEqual(r.errors, ['status 201 is not documented']);
});

test('a range stands only for the statuses it lists', () => {
    const refused = { ...problem, status: 414, title: 'the request target is too long',
                      detail: 'the request target is longer than 8192 bytes', instance: '/healthz' };
    assert.deepEqual(validator.check(exchange('GET', '/healthz', 414, 'application/problem+json', refused)).errors, []);
    const teapot = { ...refused, status: 418 };
    assert.deepEqual(validator.check(exchange('GET', '/healthz', 418, 'application/problem+json', teapot)).errors,
                     ['status 418 is not documented (4XX stands for 400, 414, 431)']);
});

test('an undocumented content type fails', () => {
    const r = validator.check(exchange('POST', '/api/v1/products', 201, 'text/html', product()));
    assert.deepEqual(r.errors, ['status 201: content type text/html is not one of application/json']);
});

test('a JSON response whose body is not JSON fails', () => {
    const r = validator.check({ method: 'GET', path: '/healthz', status: 200,
                                content_type: 'application/json', body_len: 2, body_text: 'ok' });
    assert.deepEqual(r.errors, ['status 200: a application/json response whose body is not JSON']);
});

test('a problem without its title fails', () => {
    const { title, ...untitled } = problem;
    assert.ok(title);
    const r = validator.check(exchange('GET', '/api/v1/products/7', 404, 'application/problem+json',
                                       { ...untitled, detail: 'product 7 does not exist' }));
    assert.deepEqual(r.errors, ["status 404: (body) must have required property 'title'"]);
});

test('an undocumented route must answer a 4xx problem', () => {
    assert.deepEqual(validator.check(exchange('GET', '/nope', 404, 'application/problem+json', problem)).errors, []);
    assert.deepEqual(validator.check(exchange('GET', '/nope', 200, 'application/json', {})).errors,
                     ['answered 200: an undocumented operation']);
    assert.deepEqual(validator.check(exchange('GET', '/nope', 404, 'text/plain')).errors,
                     ['answered 404 with text/plain, not a problem']);
});

test('HEAD is checked as the GET operation, without a body', () => {
    const ok = validator.check(exchange('HEAD', '/api/v1/products/7', 200, 'application/json'));
    assert.equal(ok.operation, 'getProduct (GET /api/v1/products/{id}) via HEAD');
    assert.deepEqual(ok.errors, []);
    const withBody = exchange('HEAD', '/api/v1/products/7', 200, 'application/json');
    withBody.body_len = 10;
    assert.deepEqual(validator.check(withBody).errors, ['HEAD answered with a body of 10 bytes']);
});

test('the command fails on a wrong recording, naming operation, status and error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cleave-exchanges-'));
    const cli = path.join(__dirname, 'validate_exchanges.cjs');
    try {
        let run = spawnSync(process.execPath, [cli, spec, dir], { encoding: 'utf8' });
        assert.equal(run.status, 1, 'an empty recording checks nothing and must fail');
        assert.match(run.stderr, /no recorded exchanges/);

        const wrong = exchange('GET', '/api/v1/products/7', 200, 'application/json',
                               product({ version: 0 }));
        fs.writeFileSync(path.join(dir, 'wrong.jsonl'), `${JSON.stringify(wrong)}\n`);
        run = spawnSync(process.execPath, [cli, spec, dir], { encoding: 'utf8' });
        assert.equal(run.status, 1);
        assert.match(run.stdout, /^FAIL getProduct \(GET \/api\/v1\/products\/\{id\}\): status 200: \/version must be >= 1 \(1x, e\.g\. wrong\.jsonl:1 GET \/api\/v1\/products\/7\)$/m);

        const right = exchange('GET', '/api/v1/products/7', 200, 'application/json', product());
        fs.writeFileSync(path.join(dir, 'wrong.jsonl'), `${JSON.stringify(right)}\n`);
        run = spawnSync(process.execPath, [cli, spec, dir], { encoding: 'utf8' });
        assert.equal(run.status, 0, run.stdout + run.stderr);
        assert.match(run.stdout, /^1 exchanges from 1 files validated/m);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
