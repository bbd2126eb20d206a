'use strict';
/*
 * Checks recorded HTTP exchanges against docs/openapi.yaml, so the document cannot drift
 * from what the server really sends. The JSON Schema work is done by ajv (draft 2020-12,
 * the dialect of OpenAPI 3.1), an implementation independent of the server's own codecs.
 *
 * An exchange is one JSON object per line, written by tests/support/client.c:
 *   {"method","path","status","content_type","body_len", "body" (parsed JSON) | "body_text"}
 *
 * For each exchange this finds the documented operation (path template and method; HEAD
 * falls back to the GET operation), then the documented response for its status (exact,
 * then 4XX/5XX, limited to the statuses their x-statuses lists, then default), then checks
 * the media type and validates the body against that response's schema. Requests that
 * match no documented route (unknown paths, methods a path does not serve, requests the
 * HTTP layer refuses before routing) must be answered with a 4xx RFC 9457 problem that
 * validates against components/schemas/HttpProblem. Calls of the RPC wire API (/rpc/,
 * documented in docs/wire-api.md and checked by test_wire_doc) are counted, not checked.
 *
 * A query parameter with x-sparse-fieldset ({in: JSON pointer of the objects it trims,
 * "*" for every array index; always: members kept anyway}) names the members those
 * objects keep: when the request has it, each such object must have exactly the members
 * named (and the ones kept always), and only the members it does not name may be missing.
 */
const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const SPEC_ID = 'openapi';
const WIRE_PREFIX = '/rpc/';

function escapePointer(s) {
    return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

function pointerGet(doc, pointer) {
    let node = doc;
    for (const raw of pointer.split('/').slice(1)) {
        const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
        if (node === null || typeof node !== 'object' || !(key in node)) {
            return undefined;
        }
        node = node[key];
    }
    return node;
}

/* Follows OpenAPI (not JSON Schema) $refs: a response object may be a reference. */
function deref(doc, pointer) {
    let node = pointerGet(doc, pointer);
    for (let hops = 0; node && typeof node.$ref === 'string'; hops++) {
        if (!node.$ref.startsWith('#/') || hops > 16) {
            throw new Error(`${pointer}: cannot follow $ref ${node.$ref}`);
        }
        pointer = node.$ref.slice(1);
        node = pointerGet(doc, pointer);
    }
    return { node, pointer };
}

function templateRegex(template) {
    const parts = template.split(/(\{[^}]+\})/).map((part) =>
        part.startsWith('{') ? '([^/]+)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    return new RegExp(`^${parts.join('')}$`);
}

/*
 * The document leaves its objects open, so that clients tolerate fields added later; the
 * check closes them (unevaluatedProperties: false wherever properties are listed and
 * nothing else is said), so that every field the server sends must be documented.
 */
function closeObjects(node) {
    if (Array.isArray(node)) {
        node.forEach(closeObjects);
        return;
    }
    if (node === null || typeof node !== 'object') {
        return;
    }
    if (node.properties && typeof node.properties === 'object' &&
        !('additionalProperties' in node) && !('unevaluatedProperties' in node)) {
        node.unevaluatedProperties = false;
    }
    Object.values(node).forEach(closeObjects);
}

function createValidator(specText) {
    const doc = YAML.parse(specText);
    closeObjects(doc.components);
    closeObjects(doc.paths);
    /*
     * Strict mode makes a misspelt schema keyword an error instead of a schema that
     * accepts everything; the OpenAPI 3.1 dialect adds four keywords. The whole document
     * is registered so that its "#/components/..." references resolve; its top-level
     * fields are declared as keywords so that ajv leaves them alone when it compiles the
     * root, and it compiles each schema inside when a response needs it. strictRequired is
     * off: HttpProblem requires members that Problem, in its allOf, defines.
     */
    const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
    addFormats(ajv);
    ajv.addVocabulary(['example', 'discriminator', 'xml', 'externalDocs']);
    ajv.addVocabulary(Object.keys(doc).filter((k) => !ajv.getKeyword(k)));
    ajv.addSchema(doc, SPEC_ID);
    const routes = Object.keys(doc.paths || {}).map((template) => ({
        template,
        regex: templateRegex(template),
        /* A literal segment beats a parameter: /a/b wins over /a/{x}. */
        literal: template.replace(/\{[^}]+\}/g, '').length,
    }));
    routes.sort((a, b) => b.literal - a.literal);
    const compiled = new Map();

    function schemaValidator(pointer) {
        if (!compiled.has(pointer)) {
            const validate = ajv.getSchema(`${SPEC_ID}#${pointer}`);
            if (!validate) {
                throw new Error(`no schema at ${pointer}`);
            }
            compiled.set(pointer, validate);
        }
        return compiled.get(pointer);
    }

    function findOperation(method, rawPath) {
        const p = rawPath.split('?')[0];
        const m = method.toLowerCase();
        for (const route of routes) {
            if (!route.regex.test(p)) {
                continue;
            }
            const item = doc.paths[route.template];
            const base = `/paths/${escapePointer(route.template)}`;
            if (item[m]) {
                return { template: route.template, method: m, pointer: `${base}/${m}`, op: item[m] };
            }
            /* HEAD is GET without the body (RFC 9110 9.3.2). */
            if (m === 'head' && item.get) {
                return { template: route.template, method: 'get', pointer: `${base}/get`, op: item.get, head: true };
            }
            return null;
        }
        return null;
    }

    function mediaOf(contentType) {
        return (contentType || '').split(';')[0].trim().toLowerCase();
    }

    function errorText(e) {
        const prop = e.params && (e.params.additionalProperty || e.params.unevaluatedProperty);
        const extra = prop ? ` (${prop})` : '';
        return `${e.instancePath || '(body)'} ${e.message}${extra}`;
    }

    function schemaErrors(validate, body) {
        return validate(body) ? [] : validate.errors.map(errorText);
    }

    function checkBody(ex, media, schemaPointer) {
        if (!('body' in ex)) {
            return [`a ${media} response whose body is not JSON`];
        }
        return schemaErrors(schemaValidator(schemaPointer), ex.body);
    }

    /* The sparse fieldset the request asked for: {at, keep} or null (see the top). */
    function sparseFieldset(op, pathItem, rawPath) {
        const query = new URLSearchParams(rawPath.includes('?') ? rawPath.slice(rawPath.indexOf('?') + 1) : '');
        const params = [...(pathItem.parameters || []), ...(op.parameters || [])];
        for (const param of params) {
            const rule = param['x-sparse-fieldset'];
            if (param.in === 'query' && rule && query.has(param.name)) {
                const keep = new Set([...(rule.always || []), ...query.get(param.name).split(',')]);
                const at = new RegExp(`^${rule.in.split('/').map((seg) => (seg === '*' ? '\\d+' : seg)).join('/')}$`);
                return { at, keep };
            }
        }
        return null;
    }

    /* The objects of body at the pointers sparse.at matches, with their pointers. */
    function trimmedObjects(node, pointer, sparse, out) {
        if (sparse.at.test(pointer) && node !== null && typeof node === 'object' && !Array.isArray(node)) {
            out.push({ pointer, node });
        }
        if (node !== null && typeof node === 'object') {
            for (const [k, v] of Object.entries(node)) {
                trimmedObjects(v, `${pointer}/${escapePointer(String(k))}`, sparse, out);
            }
        }
        return out;
    }

    function checkSparseBody(ex, media, schemaPointer, sparse) {
        if (!('body' in ex)) {
            return [`a ${media} response whose body is not JSON`];
        }
        const validate = schemaValidator(schemaPointer);
        const errors = [];
        if (!validate(ex.body)) {
            for (const e of validate.errors) {
                /* A member the fieldset leaves out may be missing where it trims. */
                if (e.keyword === 'required' && sparse.at.test(e.instancePath) &&
                    !sparse.keep.has(e.params.missingProperty)) {
                    continue;
                }
                errors.push(errorText(e));
            }
        }
        for (const { pointer, node } of trimmedObjects(ex.body, '', sparse, [])) {
            for (const k of Object.keys(node)) {
                if (!sparse.keep.has(k)) {
                    errors.push(`${pointer || '(body)'} has ${k}, which the fieldset does not name`);
                }
            }
        }
        return errors;
    }

    /* Returns {operation, errors}: operation names what was matched, for the report. */
    function check(ex) {
        const found = findOperation(ex.method, ex.path);
        const media = mediaOf(ex.content_type);
        const hasBody = (ex.body_len || 0) > 0;
        if (!found && ex.path.startsWith(WIRE_PREFIX)) {
            return { operation: '(wire API)', errors: [] };
        }
        if (!found) {
            const name = `(no documented operation) ${ex.method} ${ex.path.split('?')[0]}`;
            if (ex.status < 400 || ex.status > 499) {
                return { operation: name, errors: [`answered ${ex.status}: an undocumented operation`] };
            }
            if (ex.method === 'HEAD' && !hasBody) {
                return { operation: name, errors: [] };
            }
            if (media !== 'application/problem+json') {
                return { operation: name, errors: [`answered ${ex.status} with ${media || 'no content type'}, not a problem`] };
            }
            return { operation: name, errors: checkBody(ex, media, '/components/schemas/HttpProblem') };
        }
        const opName = `${found.op.operationId} (${found.method.toUpperCase()} ${found.template})`;
        const operation = found.head ? `${opName} via HEAD` : opName;
        const responses = found.op.responses || {};
        const code = String(ex.status);
        const key = [code, `${code[0]}XX`, 'default'].find((k) => k in responses);
        if (!key) {
            return { operation, errors: [`status ${ex.status} is not documented`] };
        }
        const { node: response, pointer } = deref(doc, `${found.pointer}/responses/${escapePointer(key)}`);
        /* A range stands for the statuses its response lists in x-statuses, when it does. */
        if (key !== code && Array.isArray(response['x-statuses']) && !response['x-statuses'].includes(ex.status)) {
            return { operation, errors: [`status ${ex.status} is not documented (${key} stands for ${response['x-statuses'].join(', ')})`] };
        }
        const content = response.content || {};
        const mediaTypes = Object.keys(content);
        if (mediaTypes.length === 0) {
            return { operation, errors: hasBody ? [`status ${ex.status} documents no body, got ${ex.body_len} bytes of ${media}`] : [] };
        }
        if (!(media in content)) {
            if (found.head && !media) {
                return { operation, errors: [] };
            }
            return { operation, errors: [`status ${ex.status}: content type ${media || '(none)'} is not one of ${mediaTypes.join(', ')}`] };
        }
        if (found.head) {
            return { operation, errors: hasBody ? [`HEAD answered with a body of ${ex.body_len} bytes`] : [] };
        }
        const schemaPointer = `${pointer}/content/${escapePointer(media)}/schema`;
        if (pointerGet(doc, schemaPointer) === undefined) {
            return { operation, errors: [] };
        }
        const sparse = ex.status < 300 ? sparseFieldset(found.op, doc.paths[found.template], ex.path) : null;
        const errors = sparse ? checkSparseBody(ex, media, schemaPointer, sparse) : checkBody(ex, media, schemaPointer);
        return { operation, errors: errors.map((e) => `status ${ex.status}: ${e}`) };
    }

    function documentedOperations() {
        const ops = [];
        for (const [template, item] of Object.entries(doc.paths || {})) {
            for (const m of METHODS) {
                if (item[m]) {
                    ops.push(`${item[m].operationId} (${m.toUpperCase()} ${template})`);
                }
            }
        }
        return ops;
    }

    return { check, documentedOperations };
}

function readExchanges(target) {
    const files = fs.statSync(target).isDirectory()
        ? fs.readdirSync(target).filter((f) => f.endsWith('.jsonl')).sort().map((f) => path.join(target, f))
        : [target];
    const exchanges = [];
    for (const file of files) {
        const lines = fs.readFileSync(file, 'utf8').split('\n');
        lines.forEach((line, i) => {
            if (line.trim() !== '') {
                exchanges.push({ where: `${path.basename(file)}:${i + 1}`, ex: JSON.parse(line) });
            }
        });
    }
    return { files, exchanges };
}

module.exports = { createValidator, readExchanges };
