// A real OpenID Connect provider on 127.0.0.1 for the sign-in tests (tests/test_auth_browser.py).
//
// oauth2-mock-server does the protocol: discovery, JWKS, authorization code with PKCE, signed
// RS256 ID tokens with the nonce, end_session. It signs everyone in as "johndoe" without asking,
// so this script puts a login page in front of /authorize, as a real provider has: the browser
// types a username, the provider remembers it in its own session cookie, and the ID token's
// subject, name and email are that user's. Sign-out (/endsession) ends that provider session.
//
// Usage: node provider.mjs [port]   (0 or nothing: any free port)
// Prints one JSON line when it listens: {"issuer": "http://127.0.0.1:<port>"}.

import http from "node:http";
import { OAuth2Server } from "oauth2-mock-server";

const SESSION_COOKIE = "test_idp_session";
const USERNAME = /^[a-z0-9][a-z0-9._-]{0,39}$/;

const port = Number(process.argv[2] ?? 0);
const provider = new OAuth2Server();
await provider.issuer.keys.generate("RS256");
const service = provider.service;
const userByCode = new Map();

function sessionUser(req) {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === SESSION_COOKIE) {
      const user = decodeURIComponent(value.join("="));
      return USERNAME.test(user) ? user : null;
    }
  }
  return null;
}

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const code = redirect.url.searchParams.get("code");
  const user = sessionUser(req);
  if (code && user) userByCode.set(code, user);
});

service.on("beforeTokenSigning", (token, req) => {
  const user = userByCode.get(req.body?.code);
  if (!user) return;
  token.payload.sub = `user-${user}`;
  token.payload.name = user.charAt(0).toUpperCase() + user.slice(1);
  token.payload.email = `${user}@example.test`;
  token.payload.email_verified = true;
});

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(res, next) {
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
  res.end(`<!doctype html>
<html><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body>
  <h1>Test identity provider</h1>
  <form method="post" action="/login">
    <label>Username <input name="username" autocomplete="off"></label>
    <input type="hidden" name="next" value="${escapeHtml(next)}">
    <button type="submit">Sign in</button>
  </form>
</body></html>`);
}

function login(req, res) {
  let body = "";
  req.on("data", (chunk) => {
    body += chunk;
    if (body.length > 10_000) req.destroy();
  });
  req.on("end", () => {
    const form = new URLSearchParams(body);
    const user = (form.get("username") ?? "").trim().toLowerCase();
    const next = form.get("next") ?? "";
    if (!USERNAME.test(user) || !next.startsWith("/authorize?")) {
      res.writeHead(400, { "Content-Type": "text/plain" });
      res.end("A username (letters, digits, . _ -) and the page to return to are needed.");
      return;
    }
    res.writeHead(303, {
      Location: next,
      "Set-Cookie": `${SESSION_COOKIE}=${encodeURIComponent(user)}; Path=/; HttpOnly; SameSite=Lax`,
    });
    res.end();
  });
}

const handle = service.requestHandler;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname === "/authorize" && !sessionUser(req)) {
    loginPage(res, url.pathname + url.search);
  } else if (url.pathname === "/login" && req.method === "POST") {
    login(req, res);
  } else {
    if (url.pathname === "/endsession") {
      res.setHeader("Set-Cookie", `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`);
    }
    handle(req, res);
  }
});

server.listen(port, "127.0.0.1", () => {
  provider.issuer.url = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(`${JSON.stringify({ issuer: provider.issuer.url })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
