// Test-only OpenID Provider (npm `oidc-provider`) for the bridge's integration tests.
//
// Usage: node server.mjs CONFIG.json   (or OIDC_OP_CONFIG=CONFIG.json node server.mjs)
// Config: { port, issuer, clients[], accounts{accountId: claims}, jwks{keys[]}, idTokenTTL?,
//           claims?, cookieKeys?, exitOnStdinEof? }.  Listens on 127.0.0.1 only.
// Contract:
//   * the provider is mounted under the issuer's path, so discovery is at
//     <issuer>/.well-known/openid-configuration;
//   * GET <prefix>/interaction/:uid finishes every prompt without a browser: login picks the
//     account keyed by login_hint (unknown/missing hint -> error=access_denied; its `sub` claim,
//     else the key, is the ID token's sub), consent grants whatever was requested; a login_hint
//     naming another account than the provider session's ends that session first (oidc-provider
//     answers with an auto-submitting POST form, which the Python follow_login submits);
//   * GET /__stats -> {"jwks","token","discovery"} request counts; POST /__stats/reset zeroes them;
//   * prints `READY <issuer>` on stdout once listening; exits on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider, { interactionPolicy } from 'oidc-provider';

const configPath = process.argv[2] || process.env.OIDC_OP_CONFIG;
if (!configPath) {
  console.error('usage: node server.mjs CONFIG.json (or set OIDC_OP_CONFIG)');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
const prefix = new URL(cfg.issuer).pathname.replace(/\/+$/, '');
const accounts = cfg.accounts || {}; // login_hint -> claims
// oidc-provider's accountId is the ID token's `sub`: an account's `sub` claim, else its key.
const subOf = (hint) => String(accounts[hint].sub ?? hint);
const bySub = new Map(Object.keys(accounts).map((hint) => [subOf(hint), hint]));

// Okta-like login_hint semantics: a login_hint naming another account than the session's
// forces the login prompt again (otherwise an existing session would silently win).
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'login_hint_mismatch',
  'login_hint names another account than the current session',
  'login_required',
  (ctx) => {
    const { params, session } = ctx.oidc;
    const hint = params.login_hint;
    const wanted = hint && Object.hasOwn(accounts, hint) ? subOf(hint) : hint;
    return hint && session.accountId && wanted !== session.accountId
      ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
  },
));

const claims = cfg.claims || {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username', 'given_name', 'family_name', 'locale', 'zoneinfo'],
  groups: ['groups'],
};

const provider = new Provider(cfg.issuer, {
  clients: (cfg.clients || []).map((c) => ({
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...c,
  })),
  jwks: cfg.jwks,
  cookies: { keys: cfg.cookieKeys || ['oidc-op-test-cookie-key'] },
  claims,
  scopes: [...new Set(['openid', ...Object.keys(claims)])],
  conformIdTokenClaims: false, // scope claims (email, groups) ride in the ID token, like Okta's
  responseTypes: ['code'],
  pkce: { required: () => true }, // oidc-provider v9 supports S256 only
  ttl: {
    IdToken: cfg.idTokenTTL ?? 3600,
    AccessToken: 3600,
    AuthorizationCode: 600,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  features: { devInteractions: { enabled: false } },
  interactions: { policy, url: (ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const hint = bySub.get(sub);
    if (hint === undefined) return undefined;
    return { accountId: sub, claims: async () => ({ ...accounts[hint], sub }) };
  },
  renderError(ctx, out) { // plain JSON instead of the HTML error page
    ctx.type = 'json';
    ctx.body = out;
  },
});

const callback = provider.callback();
const stats = { jwks: 0, token: 0, discovery: 0 };
const counted = new Map([
  [provider.pathFor('jwks'), 'jwks'],
  [provider.pathFor('token'), 'token'],
  [`${prefix}/.well-known/openid-configuration`, 'discovery'],
  [`${prefix}/.well-known/oauth-authorization-server`, 'discovery'],
]);
const interactionRe = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/interaction/([^/]+)$`);

function sendJson(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function finishInteraction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return sendJson(res, 400, { error: 'interaction uid mismatch' });
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const hint = params.login_hint;
    const result = hint && Object.hasOwn(accounts, hint)
      ? { login: { accountId: subOf(hint) } }
      : { error: 'access_denied', error_description: `unknown login_hint: ${hint ?? '(none)'}` };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } });
  }
  return sendJson(res, 400, { error: `unsupported prompt ${prompt.name}` });
}

const server = http.createServer(async (req, res) => {
  const { pathname } = new URL(req.url, 'http://127.0.0.1');
  try {
    if (pathname === '/__stats' && req.method === 'GET') return sendJson(res, 200, stats);
    if (pathname === '/__stats/reset' && req.method === 'POST') {
      Object.keys(stats).forEach((k) => { stats[k] = 0; });
      return sendJson(res, 200, stats);
    }
    const kind = counted.get(pathname);
    if (kind) stats[kind] += 1;
    const m = req.method === 'GET' && interactionRe.exec(pathname);
    if (m) return await finishInteraction(req, res, decodeURIComponent(m[1]));
    if (prefix && pathname !== prefix && !pathname.startsWith(`${prefix}/`)) {
      return sendJson(res, 404, { error: 'not found (outside issuer path)' });
    }
    // Express-style mount: the provider derives its mount path from originalUrl vs url.
    req.originalUrl = req.url;
    req.baseUrl = prefix;
    req.url = req.url.slice(prefix.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    return callback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) sendJson(res, err.statusCode || 500, { error: String(err.message) });
    else res.end();
  }
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (cfg.exitOnStdinEof) { // the parent test run died: do not outlive it
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

server.on('error', (err) => {
  console.error(`listen failed: ${err.message}`);
  process.exit(1);
});
server.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${cfg.issuer}\n`);
});
