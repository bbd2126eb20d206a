// The Kubernetes manifests (deploy/k8s), checked offline:
//   render   every overlay renders with `kubectl kustomize`, every object validates against
//            the Kubernetes API's schemas (npm kubernetes-models, not our own reading), and
//            every Deployment has what deploy/README.md promises (probes, hardening, rolling
//            updates without unavailability, a grace period covering the drain, resources,
//            a PodDisruptionBudget and an autoscaler), and every container's CLEAVE_*
//            environment (ConfigMap, Secrets, its own env) is one its binary accepts: the
//            binary of its image (BIN_DIR) loads it with `modules`, which refuses an
//            unknown setting as serve does;
//   edges    the NetworkPolicies' allow-graph is exactly the edge list of deploy/README.md
//            ("Network edges"), and the graph builder sees a policy that allows more.
// Usage: node check_k8s.cjs render|edges SOURCE_DIR NODE_DIR BIN_DIR
// Exits 77 (ctest's skip) with a message when kubectl is not installed.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const [mode, source, nodeDir, binDir] = process.argv.slice(2);
const YAML = require(path.join(nodeDir, 'node_modules/yaml'));
const overlaysDir = path.join(source, 'deploy/k8s/overlays');
const overlays = fs.readdirSync(overlaysDir).sort();
let failures = 0;

function fail(msg) {
    console.error(`FAIL ${msg}`);
    failures++;
}

function render(overlay) {
    const out = execFileSync('kubectl', ['kustomize', path.join(overlaysDir, overlay)], {
        encoding: 'utf8',
    });
    return YAML.parseAllDocuments(out).map((d) => d.toJS());
}

try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
} catch (e) {
    console.log('SKIPPED: kubectl is not installed (it is not in Debian); the manifests were not rendered');
    process.exit(77);
}

// ---------------------------------------------------------------------------------------
// render: schemas and the promises every Deployment keeps
function modelOf(obj) {
    const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : [null, obj.apiVersion];
    const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
    const models = require(path.join(nodeDir, 'node_modules', mod));
    return models[obj.kind];
}

const env = (c, name) => {
    for (const e of c.env || []) if (e.name === name) return e;
    return null;
};

// The environment container c gets: the ConfigMaps it reads, then its own env, secrets
// resolved from the rendered Secrets (placeholders, but of the setting's type).
function containerEnv(c, objs) {
    const out = {};
    const byName = (kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
    for (const e of c.envFrom || [])
        if (e.configMapRef) Object.assign(out, byName('ConfigMap', e.configMapRef.name)?.data || {});
    for (const e of c.env || []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) {
            const v = byName('Secret', ref.name)?.stringData?.[ref.key];
            if (v === undefined) fail(`container ${c.name}: ${e.name} names ${ref.name}/${ref.key}, which no Secret holds`);
            out[e.name] = v ?? '';
        } else {
            out[e.name] = e.value ?? '';
        }
    }
    return out;
}

// Does the binary of image accept env? `modules` loads the configuration and refuses an
// unknown CLEAVE_* setting or a malformed value, without connecting anywhere.
function checkSettings(where, image, env) {
    const tag = image.split(':')[1];
    const bin = path.join(binDir, tag === 'monolith' || tag === 'host' ? 'cleave' : `cleave-${tag}`);
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'k8s-settings-'));
    const vars = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(env)) if (k.startsWith('CLEAVE_')) vars[k] = v;
    // The pod's data and migrations folders are in the image, not here.
    vars.CLEAVE_DATA_DIR = dir;
    delete vars.CLEAVE_MIGRATIONS_DIR;
    try {
        execFileSync(bin, ['modules'], { env: vars, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
        fail(`${where}: ${path.basename(bin)} refuses its settings: ${(e.stderr || e.message).toString().trim()}`);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function checkDeployment(overlay, d, objs, config) {
    const where = `${overlay}: Deployment ${d.metadata.name}`;
    const spec = d.spec.template.spec;
    const pod = spec.securityContext || {};
    if (d.spec.strategy?.type !== 'RollingUpdate' || d.spec.strategy.rollingUpdate?.maxUnavailable !== 0)
        fail(`${where}: rolling updates must have maxUnavailable 0`);
    if (pod.runAsNonRoot !== true || pod.runAsUser !== 65532 || pod.seccompProfile?.type !== 'RuntimeDefault')
        fail(`${where}: pod must run as non-root 65532 with the RuntimeDefault seccomp profile`);
    if (spec.automountServiceAccountToken !== false) fail(`${where}: mounts a service account token`);
    const all = [...(spec.initContainers || []), ...spec.containers];
    for (const c of all) {
        const sc = c.securityContext || {};
        if (sc.readOnlyRootFilesystem !== true || sc.allowPrivilegeEscalation !== false ||
            sc.runAsNonRoot !== true || sc.runAsUser !== 65532 ||
            JSON.stringify(sc.capabilities?.drop) !== '["ALL"]' || sc.seccompProfile?.type !== 'RuntimeDefault')
            fail(`${where}: container ${c.name} is not read-only, non-root, without capabilities`);
        if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory)
            fail(`${where}: container ${c.name} lacks cpu/memory requests or a memory limit`);
    }
    // The admin role migrates before the app starts, and only there.
    const migrate = (spec.initContainers || []).find((c) => JSON.stringify(c.args) === '["migrate"]');
    if (!migrate || !env(migrate, 'CLEAVE_DATABASE_ADMIN_URL')) fail(`${where}: no init container runs migrate as the admin`);
    const app = spec.containers.find((c) => c.name === 'cleave');
    if (!app) return fail(`${where}: no container named cleave`);
    if (migrate && migrate.image !== app.image) fail(`${where}: migrate runs ${migrate.image}, the app ${app.image}`);
    if (env(app, 'CLEAVE_DATABASE_ADMIN_URL')) fail(`${where}: the serving container holds the admin URL`);
    if (JSON.stringify(app.args) !== '["serve"]') fail(`${where}: the app does not run serve`);
    const probe = (p, pathWanted, what) => {
        if (p?.httpGet?.path !== pathWanted || p.httpGet.port !== 'http') fail(`${where}: ${what} probe is not GET ${pathWanted}`);
    };
    probe(app.startupProbe, '/healthz', 'startup');
    probe(app.livenessProbe, '/healthz', 'liveness');
    probe(app.readinessProbe, '/readyz', 'readiness');
    // The grace period covers the preStop sleep, the drain's delay and grace, and a margin.
    const sleep = app.lifecycle?.preStop?.sleep?.seconds;
    const delayMs = Number(config.CLEAVE_DRAIN_DELAY_MS);
    const graceS = Number(config.CLEAVE_DRAIN_GRACE_S);
    if (!(sleep > 0)) fail(`${where}: no preStop sleep`);
    if (!(delayMs > 0 && graceS > 0)) fail(`${where}: CLEAVE_DRAIN_DELAY_MS / CLEAVE_DRAIN_GRACE_S not configured`);
    const need = sleep + Math.ceil(delayMs / 1000) + graceS + 1;
    if (!(spec.terminationGracePeriodSeconds >= need))
        fail(`${where}: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} < preStop ${sleep} + drain ${delayMs / 1000} + grace ${graceS} + 1`);
    for (const c of all)
        if (!c.envFrom?.some((e) => /^cleave-config-/.test(e.configMapRef?.name || '')))
            fail(`${where}: container ${c.name} does not read the generated cleave-config`);
    const name = d.metadata.name;
    const sel = JSON.stringify(d.spec.selector.matchLabels);
    if (!objs.some((o) => o.kind === 'Service' && JSON.stringify(o.spec.selector) === sel)) fail(`${where}: no Service`);
    if (!objs.some((o) => o.kind === 'PodDisruptionBudget' && JSON.stringify(o.spec.selector.matchLabels) === sel))
        fail(`${where}: no PodDisruptionBudget`);
    if (!objs.some((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.name === name))
        fail(`${where}: no HorizontalPodAutoscaler`);
    if (!app.image.startsWith('localhost/cleave:')) fail(`${where}: image ${app.image} is not one make image builds`);
    for (const c of all) checkSettings(`${where}: container ${c.name}`, c.image, containerEnv(c, objs));
    // Service calls carry JWTs (ADR 0030): where modules run in several processes, each
    // has its client, a service verifies with identity's keys, and nobody runs the
    // insecure development token.
    const appEnv = containerEnv(app, objs);
    if ('CLEAVE_DEV_SERVICE_TOKEN' in appEnv) fail(`${where}: sets CLEAVE_DEV_SERVICE_TOKEN (development only)`);
    const split = objs.filter((o) => o.kind === 'Deployment').length > 1;
    if (split && !(appEnv.CLEAVE_CLIENT_ID && 'CLEAVE_CLIENT_SECRET' in appEnv))
        fail(`${where}: calls other processes without CLEAVE_CLIENT_ID / CLEAVE_CLIENT_SECRET`);
    if (d.metadata.labels?.['app.kubernetes.io/component'] === 'service' && !appEnv.CLEAVE_IDENTITY_URL)
        fail(`${where}: a service without CLEAVE_IDENTITY_URL cannot verify its callers`);
}

function doRender() {
    for (const overlay of overlays) {
        const objs = render(overlay);
        let n = 0;
        for (const obj of objs) {
            const Model = modelOf(obj);
            if (!Model) {
                fail(`${overlay}: no schema for ${obj.apiVersion} ${obj.kind}`);
                continue;
            }
            try {
                new Model(obj).validate();
                n++;
            } catch (e) {
                fail(`${overlay}: ${obj.kind} ${obj.metadata?.name}: ${e.message}`);
            }
        }
        // The generator names the ConfigMap cleave-config-<hash of its content>.
        const config = objs.find((o) => o.kind === 'ConfigMap' && /^cleave-config-/.test(o.metadata.name))?.data || {};
        const deployments = objs.filter((o) => o.kind === 'Deployment');
        for (const d of deployments) checkDeployment(overlay, d, objs, config);
        // Secrets hold placeholders only.
        for (const s of objs.filter((o) => o.kind === 'Secret'))
            for (const [k, v] of Object.entries(s.stringData || {}))
                if (!/REPLACE-ME/.test(v)) fail(`${overlay}: Secret ${s.metadata.name} ${k} is not a placeholder`);
        console.log(`${overlay}: ${objs.length} objects rendered, ${n} valid against the schemas, ` +
            `${deployments.length} Deployments: ${deployments.map((d) => d.metadata.name).join(', ')}`);
    }
    const want = ['extracted', 'monolith', 'monolith-nats'];
    if (JSON.stringify(overlays) !== JSON.stringify(want)) fail(`overlays are ${overlays}, expected ${want}`);
}

// ---------------------------------------------------------------------------------------
// edges: the allow-graph
// The peers outside the manifests, as the policies' comments name them.
const NS = 'cleave';
const externalNodes = [
    { name: 'edge', ns: NS, labels: { 'app.kubernetes.io/component': 'edge' } },
    { name: 'postgres', ns: NS, labels: { 'app.kubernetes.io/name': 'postgres' } },
    { name: 'nats', ns: NS, labels: { 'app.kubernetes.io/name': 'nats' } },
    { name: 'kube-dns', ns: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
];

function matches(selector, labels) {
    if (!selector) return false;
    for (const [k, v] of Object.entries(selector.matchLabels || {})) if (labels[k] !== v) return false;
    for (const e of selector.matchExpressions || []) {
        const has = Object.prototype.hasOwnProperty.call(labels, e.key);
        if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
        if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
        if (e.operator === 'Exists' && !has) return false;
        if (e.operator === 'DoesNotExist' && has) return false;
    }
    return true;
}

// A peer of a rule (from/to) against a node; the policy's own namespace is NS.
function peerMatches(peer, node) {
    if (peer.ipBlock) return true; // an address range may be anything: counted as allowing all
    const nsLabels = { 'kubernetes.io/metadata.name': node.ns };
    if (peer.namespaceSelector) {
        if (!matches(peer.namespaceSelector, nsLabels)) return false;
    } else if (node.ns !== NS) {
        return false;
    }
    return peer.podSelector ? matches(peer.podSelector, node.labels) : true;
}

// Ports a rule allows, as "TCP 8080"; a rule without ports allows every port ("any").
function rulePorts(rule) {
    if (!rule.ports || rule.ports.length === 0) return ['any'];
    return rule.ports.map((p) => `${p.protocol || 'TCP'} ${p.port ?? 'any'}`);
}

// Is traffic src -> dst on port allowed in direction dir ('ingress' on dst, 'egress' on src)?
// A pod no policy of that direction selects is not isolated: everything is allowed.
function allowed(policies, dir, self, other, port) {
    const type = dir === 'ingress' ? 'Ingress' : 'Egress';
    const selecting = policies.filter((p) => {
        const types = p.spec.policyTypes || (p.spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);
        return types.includes(type) && matches(p.spec.podSelector, self.labels);
    });
    if (selecting.length === 0) return true;
    for (const p of selecting)
        for (const rule of p.spec[dir] || []) {
            const peers = rule[dir === 'ingress' ? 'from' : 'to'];
            const peerOk = !peers || peers.length === 0 || peers.some((peer) => peerMatches(peer, other));
            const ports = rulePorts(rule);
            if (peerOk && (ports.includes('any') || ports.includes(port))) return true;
        }
    return false;
}

function graph(objs) {
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const ours = objs.filter((o) => o.kind === 'Deployment').map((d) => ({
        name: d.metadata.name, ns: NS, labels: d.spec.template.metadata.labels, ours: true,
    }));
    const nodes = [...ours, ...externalNodes];
    // Every port any policy names, and "any" for a pod left open.
    const ports = new Set(['any']);
    for (const p of policies)
        for (const dir of ['ingress', 'egress'])
            for (const rule of p.spec[dir] || []) for (const port of rulePorts(rule)) ports.add(port);
    const edges = new Set();
    for (const src of nodes)
        for (const dst of nodes) {
            if (src === dst || (!src.ours && !dst.ours)) continue;
            for (const port of ports) {
                // The policies govern our pods only: the far side's own rules are not ours.
                const out = src.ours ? allowed(policies, 'egress', src, dst, port) : true;
                const inn = dst.ours ? allowed(policies, 'ingress', dst, src, port) : true;
                if (out && inn) edges.add(`${src.name} -> ${dst.name} ${port}`);
            }
        }
    return edges;
}

// The table of deploy/README.md's "Network edges": | overlay | from | to | port |
function documented() {
    const text = fs.readFileSync(path.join(source, 'deploy/README.md'), 'utf8');
    const section = text.split(/^## /m).find((s) => s.startsWith('Network edges'));
    if (!section) throw new Error('deploy/README.md has no "## Network edges" section');
    const byOverlay = {};
    for (const line of section.split('\n')) {
        const cells = line.split('|').map((c) => c.trim().replace(/`/g, ''));
        if (cells.length !== 6 || !overlays.includes(cells[1])) continue;
        const [, overlay, from, to, port] = cells;
        for (const src of from.split(/,\s*/))
            for (const dst of to.split(/,\s*/))
                for (const p of port.split(/,\s*/)) (byOverlay[overlay] ??= new Set()).add(`${src} -> ${dst} ${p}`);
    }
    return byOverlay;
}

function compare(label, got, want) {
    const extra = [...got].filter((e) => !want.has(e)).sort();
    const missing = [...want].filter((e) => !got.has(e)).sort();
    for (const e of extra) fail(`${label}: allowed but not documented: ${e}`);
    for (const e of missing) fail(`${label}: documented but not allowed: ${e}`);
    return extra.length + missing.length;
}

function doEdges() {
    const docs = documented();
    for (const overlay of overlays) {
        const objs = render(overlay);
        const want = docs[overlay] || new Set();
        if (want.size === 0) fail(`${overlay}: deploy/README.md documents no edges`);
        const got = graph(objs);
        compare(overlay, got, want);
        console.log(`${overlay}: ${got.size} allowed edges, ${want.size} documented`);
        // The builder must see what a wrong policy would open: without the default deny,
        // and with one extra peer, the graph differs from the documented one.
        const quiet = (objs2) => {
            const g = graph(objs2);
            return [...g].filter((e) => !want.has(e)).length + [...want].filter((e) => !g.has(e)).length;
        };
        const noDeny = objs.filter((o) => !(o.kind === 'NetworkPolicy' && o.metadata.name === 'default-deny'));
        const extraPeer = JSON.parse(JSON.stringify(objs));
        const hostPolicy = extraPeer.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'cleave-host');
        hostPolicy.spec.egress.push({ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/component': 'edge' } } }],
            ports: [{ protocol: 'TCP', port: 8080 }] });
        const dropped = JSON.parse(JSON.stringify(objs));
        dropped.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'cleave-host').spec.egress.pop();
        // Dropping the default deny changes nothing where every pod is selected by a
        // policy of each direction anyway; the other two must always show.
        for (const [what, o] of [['an extra peer', extraPeer], ['a dropped rule', dropped]])
            if (quiet(o) === 0) fail(`${overlay}: the graph did not change with ${what}`);
        const openGraph = graph(noDeny.filter((o) => o.kind !== 'NetworkPolicy' || o.metadata.name === 'cleave-dns'));
        if ([...openGraph].filter((e) => !want.has(e)).length === 0) fail(`${overlay}: pods without policies look closed`);
    }
}

if (mode === 'render') doRender();
else if (mode === 'edges') doEdges();
else {
    console.error('usage: check_k8s.cjs render|edges SOURCE_DIR NODE_DIR');
    process.exit(2);
}
if (failures > 0) {
    console.error(`${failures} failure(s)`);
    process.exit(1);
}
console.log('ok');
