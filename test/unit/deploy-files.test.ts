// The deployment files in docker/ checked as their tools would: Kubernetes manifests against the API
// schemas (kubernetes-models' validators) and against each other and appfence's own config parser;
// the systemd unit with systemd-analyze; the Dockerfile and compose file for the properties the
// operator guide promises (non-root, HEALTHCHECK, pinned base image, host networking, EXPOSEd ports
// = the example config's listeners).
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parseConfig } from '../../src/config/load.js';
import { PACKAGE_ROOT } from '../../src/config/default.js';
import { instructions as dockerInstructions } from '../helpers/dockerfile.js';

const DOCKER = join(PACKAGE_ROOT, 'docker');
const K8S = join(DOCKER, 'kubernetes');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const manifests: Obj[] = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((f) => parseAllDocuments(readFileSync(join(K8S, f), 'utf8')).map((d) => ({ ...(d.toJS() as Obj), __file: f })));
const byKind = (kind: string): Obj[] => manifests.filter((m) => m.kind === kind);
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  ConfigMap, Namespace, Service, Deployment, PodDisruptionBudget,
} as never;

t.test('every Kubernetes manifest validates against the API schema of its kind', async (t) => {
  t.ok(manifests.length >= 5, 'namespace, configmap, deployment, services, pdb');
  for (const m of manifests) {
    const { __file, ...object } = m;
    const Model = MODELS[object.kind as string];
    t.ok(Model, `${__file}: a known kind (${object.kind})`);
    if (Model === undefined) continue;
    t.doesNotThrow(() => new Model(object as never).validate(), `${__file}: ${object.kind}/${object.metadata?.name} is valid`);
  }
  // The validators do catch mistakes: a wrong type and a missing required field.
  const deployment = structuredClone(byKind('Deployment')[0]!);
  delete deployment.__file;
  deployment.spec.replicas = 'two';
  t.throws(() => new Deployment(deployment).validate(), /replicas must be integer/);
  const service = structuredClone(byKind('Service')[0]!);
  delete service.__file;
  delete service.spec.ports[0].port;
  t.throws(() => new Service(service).validate(), /port/);
  const kustomization = parseYaml(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  t.same(kustomization.resources.sort(), [...new Set(manifests.map((m) => m.__file as string))].sort(), 'kustomization lists every manifest');
});

t.test('the manifests agree with each other and with appfence', async (t) => {
  const [deployment] = byKind('Deployment');
  const pod = deployment!.spec.template;
  const container = pod.spec.containers[0];
  const labels = pod.metadata.labels as Record<string, string>;
  const selects = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
  t.ok(selects(deployment!.spec.selector.matchLabels), 'the Deployment selects its own pods');
  for (const svc of byKind('Service')) t.ok(selects(svc.spec.selector), `Service ${svc.metadata.name} selects the pods`);
  t.ok(selects(byKind('PodDisruptionBudget')[0]!.spec.selector.matchLabels), 'the PDB covers the pods');
  const [dnsService] = byKind('Service').filter((s) => s.spec.type === 'LoadBalancer');
  t.equal(dnsService!.spec.externalTrafficPolicy, 'Local', 'client source addresses are kept');
  const ports = dnsService!.spec.ports as Obj[];
  t.ok(ports.some((p) => p.port === 53 && p.protocol === 'UDP') && ports.some((p) => p.port === 53 && p.protocol === 'TCP'), '53/udp and 53/tcp');
  t.notOk(ports.some((p) => p.targetPort === 'admin'), 'the admin port is not on the LoadBalancer');
  const containerPorts = new Map((container.ports as Obj[]).map((p) => [`${p.name}`, p]));
  for (const svc of byKind('Service')) {
    for (const p of svc.spec.ports as Obj[]) {
      const target = containerPorts.get(p.targetPort);
      t.ok(target, `${svc.metadata.name}:${p.name} targets a named container port`);
      t.equal(target?.protocol, p.protocol, `${p.name}: same protocol`);
    }
  }
  t.equal(container.readinessProbe.httpGet.path, '/readyz');
  t.equal(container.livenessProbe.httpGet.path, '/healthz');
  t.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory, 'resources set');
  t.equal(container.securityContext.allowPrivilegeEscalation, false);
  t.same(container.securityContext.capabilities.drop, ['ALL']);
  t.equal(pod.spec.securityContext.runAsNonRoot, true);

  // The ConfigMap's appfence.yaml is a valid appfence config whose listeners are the container ports.
  const [configMap] = byKind('ConfigMap');
  const config = parseConfig(configMap!.data['appfence.yaml'], '/etc/appfence/appfence.yaml', { APPFENCE_ADMIN_TOKEN: 'x' });
  const listened = [
    ...config.dns.listen.flatMap((a) => [`${a.port}/UDP`, `${a.port}/TCP`]),
    ...(config.dns.tls?.listen ?? []).map((a) => `${a.port}/TCP`),
    ...(config.dns.https?.listen ?? []).map((a) => `${a.port}/TCP`),
    ...(config.proxy?.listen ?? []).map((a) => `${a.port}/TCP`),
    `${config.admin?.listen.port}/TCP`,
  ].sort();
  t.same((container.ports as Obj[]).map((p) => `${p.containerPort}/${p.protocol}`).sort(), listened, 'container ports = config listeners');
  t.equal(containerPorts.get('admin')?.containerPort, config.admin?.listen.port, 'probes hit admin.listen');
  t.ok(config.dns.listen.every((a) => a.port >= 1024), 'unprivileged ports in the pod: no capability needed');
  t.equal(config.log.blocks, 'stdout', 'block events go to the cluster log pipeline');
  const mounts = (container.volumeMounts as Obj[]).map((m) => m.mountPath as string);
  for (const file of [config.dns.tls?.cert, config.dns.https?.key, ...(config.clientCerts?.ca ?? [])]) {
    t.ok(file !== undefined && mounts.some((m) => file.startsWith(m + '/')), `${file} is on a mounted volume`);
  }
});

const hasSystemdAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

t.test('the systemd unit', async (t) => {
  const unit = readFileSync(join(DOCKER, 'appfence.service'), 'utf8');
  const has = (line: RegExp, what: string) => t.match(unit, line, what);
  has(/^DynamicUser=yes$/m, 'a dynamic user, never root');
  has(/^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m, 'binds :53 without root');
  has(/^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m, 'and nothing more');
  has(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'systemctl reload sends SIGHUP');
  has(/^StateDirectory=appfence$/m, 'stateDir /var/lib/appfence');
  has(/^ExecStart=\S+ \S+\/dist\/cli\.js serve --config \/etc\/appfence\/appfence\.yaml$/m, 'serves the config');
  for (const opt of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'RestrictAddressFamilies=', 'SystemCallFilter=@system-service']) {
    t.ok(unit.includes(opt), `hardening: ${opt}`);
  }
  if (!hasSystemdAnalyze) {
    t.comment('systemd-analyze is not installed: verify skipped');
    return;
  }
  const r = spawnSync('systemd-analyze', ['verify', join(DOCKER, 'appfence.service')], { encoding: 'utf8' });
  t.equal(r.status, 0, `systemd-analyze verify: ${r.stderr}`);
  t.equal(r.stderr.split('\n').filter((l) => l.includes('appfence.service')).join('\n'), '', 'no findings about the unit');
});

t.test('the Dockerfile', async (t) => {
  const ins = dockerInstructions(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8')).map((i): [string, string] => [i.keyword, i.args]);
  const all = (k: string) => ins.filter(([key]) => key === k).map(([, v]) => v);
  const args = new Map(all('ARG').map((a) => a.split('=') as [string, string]));
  const froms = all('FROM').map((f) => f.replace(/\$\{(\w+)\}/g, (_m, name: string) => args.get(name) ?? ''));
  t.ok(froms.length >= 2, 'multi-stage');
  for (const from of froms) {
    t.match(from, /^node:24\.\d+\.\d+-[a-z]+-slim(@sha256:[0-9a-f]{64})?(\s|$)/, `base image pinned to an exact Node 24 release: ${from}`);
  }
  // Global ARGs come before the first FROM; every stage starts at its FROM.
  const stages: [string, string][][] = [];
  for (const i of ins) {
    if (i[0] === 'FROM') stages.push([i]);
    else stages[stages.length - 1]?.push(i);
  }
  const final = stages[stages.length - 1]!;
  const user = final.filter(([k]) => k === 'USER').map(([, v]) => v).pop();
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `the final stage runs as a non-root USER (${user})`);
  t.notOk(final.some(([k, v]) => k === 'RUN' && /npm (ci|install)(?!.*--omit=dev)/.test(v)), 'no dev dependencies installed in the final stage');
  t.ok(stages.some((s) => s.some(([k, v]) => k === 'RUN' && /npm ci --omit=dev/.test(v))), 'production dependencies from npm ci --omit=dev');
  t.ok(final.some(([k, v]) => k === 'COPY' && /--from=build \S*dist/.test(v)), 'dist/ comes from the build stage');
  t.ok(final.some(([k, v]) => k === 'RUN' && /setcap cap_net_bind_service=\+ep/.test(v)), 'port 53 through CAP_NET_BIND_SERVICE, not root');
  const health = final.find(([k]) => k === 'HEALTHCHECK')?.[1] ?? '';
  t.match(health, /CMD \["node", "-e", .*fetch\(/, 'HEALTHCHECK with node\'s fetch');
  t.notMatch(health, /curl|wget/, 'needs no curl in the image');
  t.match(final.find(([k]) => k === 'ENTRYPOINT')?.[1], /^\["node", /, 'exec form: SIGTERM reaches node');
  t.match(final.find(([k]) => k === 'CMD')?.[1], /^\[/, 'CMD in exec form');

  // EXPOSE = every listener of the example config the image ships.
  const example = parseConfig(readFileSync(join(DOCKER, 'appfence.example.yaml'), 'utf8'), '/etc/appfence/appfence.yaml', { APPFENCE_ADMIN_TOKEN: 'x' });
  const listeners = [
    ...example.dns.listen.flatMap((a) => [`${a.port}/udp`, `${a.port}/tcp`]),
    ...(example.dns.tls?.listen ?? []).map((a) => `${a.port}/tcp`),
    ...(example.dns.https?.listen ?? []).map((a) => `${a.port}/tcp`),
    ...(example.proxy?.listen ?? []).map((a) => `${a.port}/tcp`),
    ...(example.proxy?.tls?.listen ?? []).map((a) => `${a.port}/tcp`),
    `${example.admin?.listen.port}/tcp`,
  ];
  const exposed = all('EXPOSE').flatMap((e) => e.split(/\s+/)).map((p) => (p.includes('/') ? p : `${p}/tcp`));
  t.same([...new Set(exposed)].sort(), [...new Set(listeners)].sort(), 'EXPOSEd ports match the example config');
  t.match(final.find(([k]) => k === 'ENV')?.[1], /APPFENCE_HEALTH_URL=http:\/\/127\.0\.0\.1:9153\/healthz/, 'the health URL is the example admin.listen');
  t.equal(example.admin?.listen.port, 9153);
});

t.test('the compose file', async (t) => {
  const text = readFileSync(join(DOCKER, 'compose.yaml'), 'utf8');
  const compose = parseYaml(text) as Obj;
  const svc = compose.services.appfence as Obj;
  t.equal(svc.network_mode, 'host', 'host networking by default');
  t.match(text, /bridge[\s\S]{0,200}gateway[\s\S]{0,300}subnet identity silently stops working/i, 'the comment says why');
  t.equal(svc.restart, 'unless-stopped');
  t.equal(svc.logging.driver, 'json-file');
  t.ok(svc.logging.options['max-size'] && svc.logging.options['max-file'], 'log rotation');
  const targets = (svc.volumes as string[]).map((v) => v.split(':')[1]);
  for (const path of ['/etc/appfence', '/etc/appfence/certs', '/var/lib/appfence', '/var/log/appfence']) t.ok(targets.includes(path), `volume for ${path}`);
  t.notMatch(String(svc.user), /^(0|root)\b/, 'not root');
  t.same(svc.cap_add, ['NET_BIND_SERVICE']);
  t.same(svc.healthcheck.test.slice(0, 3), ['CMD', 'node', '-e'], 'the same health check as the image');
  t.equal(svc.build.dockerfile, 'docker/Dockerfile');
});
