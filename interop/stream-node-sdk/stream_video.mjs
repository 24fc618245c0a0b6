// Stream's own server SDK checks what callgate's streamvideo adapter makes,
// and makes what the adapter must accept. Input: one JSON object on argv[2]:
//   {secret, apiKey, goToken, body, goSignature, gzipBodyB64, claims}
// Output: one JSON object on stdout.
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { StreamClient } from '@stream-io/node-sdk';

const input = JSON.parse(process.argv[2]);
const client = new StreamClient(input.apiKey, input.secret);
const out = {};

// Webhooks, Go → SDK: the legacy verifyWebhook and verifyAndParseWebhook,
// over the plain body and over its gzip form.
out.verifyWebhook = client.verifyWebhook(input.body, input.goSignature);
out.verifyWebhookTampered = client.verifyWebhook(input.body + ' ', input.goSignature);
try {
  out.parsed = client.verifyAndParseWebhook(Buffer.from(input.body), input.goSignature);
} catch (e) {
  out.parsedError = String(e);
}
try {
  out.parsedGzip = client.verifyAndParseWebhook(zlib.gzipSync(Buffer.from(input.body)), input.goSignature);
} catch (e) {
  out.parsedGzipError = String(e);
}

// Webhooks, SDK side → Go: the signature as the SDK computes it when it
// verifies (HMAC-SHA256 hex with the API secret over the raw body).
out.sdkSignature = crypto.createHmac('sha256', Buffer.from(input.secret, 'utf8')).update(input.body).digest('hex');
out.sdkSignatureVerifies = client.verifyWebhook(input.body, out.sdkSignature);

// Tokens: the SDK's call token with the same claims, and the SDK's
// jsonwebtoken verifying the gateway's token with the secret.
const c = input.claims;
out.sdkCallToken = client.generateCallToken({ user_id: c.user_id, call_cids: c.call_cids, role: c.role, iat: c.iat, exp: c.exp });
out.sdkUserToken = client.createToken(c.user_id, c.exp, c.iat);
try {
  out.goTokenPayload = jwt.verify(input.goToken, input.secret, { algorithms: ['HS256'], clockTimestamp: c.iat + 10 });
} catch (e) {
  out.goTokenError = String(e);
}
try {
  jwt.verify(input.goToken, input.secret + 'x', { algorithms: ['HS256'], clockTimestamp: c.iat + 10 });
  out.wrongSecretAccepted = true;
} catch {
  out.wrongSecretAccepted = false;
}
process.stdout.write(JSON.stringify(out));
