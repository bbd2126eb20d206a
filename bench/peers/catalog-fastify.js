'use strict';
// The peer a team might pick instead of Cleave for the catalog's reads (issue #16,
// TARGETS.md): Node.js + Fastify 5 + better-sqlite3, reading the catalog's own SQLite file
// and answering GET /api/v1/products/:id and GET /healthz with the same JSON bytes as
// Cleave's gateway (bench_peers checks that before measuring). Written as such a service
// would be: prepared statements, a read-only connection in WAL mode, Fastify's defaults.
//   node catalog-fastify.js CATALOG_DB PORT
const Database = require('better-sqlite3');
const fastify = require('fastify')({ logger: false });

const [dbPath, port] = process.argv.slice(2);
if (!dbPath || !/^[0-9]+$/.test(port || '')) {
  console.error('usage: node catalog-fastify.js CATALOG_DB PORT');
  process.exit(2);
}
const db = new Database(dbPath, { readonly: true, fileMustExist: true });
const product = db.prepare(
  'SELECT id, sku, name, description, price_amount, currency, category_id, created_at, ' +
    'updated_at, version FROM products WHERE id = ?');
const tags = db.prepare('SELECT tag FROM product_tags WHERE product_id = ? ORDER BY tag').pluck();

fastify.get('/healthz', async () => ({ status: 'ok' }));

fastify.get('/api/v1/products/:id', async (req, reply) => {
  const id = Number(req.params.id);
  const row = Number.isSafeInteger(id) && id > 0 ? product.get(id) : undefined;
  if (row === undefined) {
    reply.code(404).type('application/problem+json');
    return { type: 'about:blank', title: 'Not Found', status: 404 };
  }
  const body = { id: row.id, sku: row.sku, name: row.name };
  if (row.description !== null) {
    body.description = row.description;
  }
  body.price = { amount: row.price_amount, currency: row.currency };
  body.category = row.category_id;
  body.tags = tags.all(row.id);
  body.created_at = row.created_at;
  body.updated_at = row.updated_at;
  body.version = row.version;
  reply.header('ETag', `"${row.version}"`);
  return body;
});

fastify.listen({ host: '127.0.0.1', port: Number(port) }).then(
  () => console.log(`listening on 127.0.0.1:${port}`),
  (err) => {
    console.error(err.message);
    process.exit(1);
  });
