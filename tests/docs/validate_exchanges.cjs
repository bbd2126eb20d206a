'use strict';
/*
 * Usage: node validate_exchanges.cjs SPEC DIR_OR_FILE
 *
 * Validates every exchange the end-to-end suites recorded (see openapi_exchanges.cjs)
 * against SPEC. Fails naming the operation, the status and the schema error; fails too
 * when nothing was recorded, since then nothing was checked.
 */
const fs = require('node:fs');
const { createValidator, readExchanges } = require('./openapi_exchanges.cjs');

function main(argv) {
    if (argv.length !== 2) {
        console.error('usage: node validate_exchanges.cjs SPEC DIR_OR_FILE');
        return 2;
    }
    const [spec, target] = argv;
    if (!fs.existsSync(target)) {
        console.error(`${target}: no recorded exchanges: run the e2e tests first (ctest -L e2e)`);
        return 1;
    }
    const validator = createValidator(fs.readFileSync(spec, 'utf8'));
    const { files, exchanges } = readExchanges(target);
    if (exchanges.length === 0) {
        console.error(`${target}: no recorded exchanges: run the e2e tests first (ctest -L e2e)`);
        return 1;
    }
    /* The same mistake is usually made many times: report it once, with a count and an example. */
    const failures = new Map();
    const covered = new Set();
    let unrouted = 0;
    let wire = 0;
    for (const { where, ex } of exchanges) {
        const { operation, errors } = validator.check(ex);
        if (operation === '(wire API)') {
            wire++;
        } else if (operation.startsWith('(no documented operation)')) {
            unrouted++;
        } else {
            covered.add(operation.replace(/ via HEAD$/, ''));
        }
        for (const error of errors) {
            const key = `${operation}: ${error}`;
            const seen = failures.get(key) || { count: 0, example: `${where} ${ex.method} ${ex.path}` };
            seen.count++;
            failures.set(key, seen);
        }
    }
    const documented = validator.documentedOperations();
    const uncovered = documented.filter((op) => !covered.has(op));
    console.log(`${exchanges.length} exchanges from ${files.length} files validated against ${spec}`);
    console.log(`${covered.size} of ${documented.length} documented operations covered, ` +
                `${unrouted} answers to undocumented requests (problems), ` +
                `${wire} calls of the RPC wire API (docs/wire-api.md, not checked here)`);
    if (uncovered.length > 0) {
        console.log(`not exercised by these suites: ${uncovered.join(', ')}`);
    }
    for (const [key, { count, example }] of failures) {
        console.log(`FAIL ${key} (${count}x, e.g. ${example})`);
    }
    return failures.size === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
