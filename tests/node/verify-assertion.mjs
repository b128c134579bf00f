// Verifies guestgate's scope assertion the way an app would, with the `jose` library:
// the signature against the JWKS fetched over HTTP, the audience, the issuer, the expiry,
// and that the assertion is about this very request (method and target). The README's
// app-side snippet is `guestScope` below.
//
//   node verify-assertion.mjs JWKS_URL AUDIENCE METHOD TARGET TOKEN
//
// Prints the claims as JSON and exits 0 when valid; prints the reason and exits 1 when not.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, audience, method, target, token] = process.argv.slice(2);
const JWKS = createRemoteJWKSet(new URL(jwksUrl));

async function guestScope(req) {
  const { payload } = await jwtVerify(req.headers['x-guestgate-assertion'], JWKS, {
    audience,
    issuer: 'guestgate',
    algorithms: ['EdDSA'],
  });
  if (payload.method !== req.method || payload.target !== req.url) {
    throw Object.assign(new Error('the assertion is for another request'), { code: 'WRONG_REQUEST' });
  }
  return payload; // { sub, share, case, version, profile, rule, jti, ... }
}

guestScope({ method, url: target, headers: { 'x-guestgate-assertion': token } })
  .then((payload) => console.log(JSON.stringify(payload)))
  .catch((e) => {
    console.error(e.code || e.message);
    process.exit(1);
  });
