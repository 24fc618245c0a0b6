// Stream's own server-side JS SDK checked against callgate's Stream Chat
// adapter:
//   node server.mjs <api key> <api secret> <fake Stream base URL> <cases.json> <gateway server token>
// cases.json: [{"name", "body_b64", "signature"}]. Prints one JSON object:
// each case's verdict from the SDK's verifyWebhook and
// verifyAndParseWebhook (which inflates gzip bodies), the tokens the SDK
// mints, whether the gateway's server token verifies under the secret,
// and the SDK's REST calls made against the fake Stream (which the Go test
// checks with the gateway's verifier).
import { readFileSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { StreamChat, verifyAndParseWebhook, JWTServerToken } from 'stream-chat';

const [key, secret, baseURL, casesPath, gatewayToken] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
const client = new StreamChat(key, secret, { baseURL });

const out = { verify: {}, tokens: {}, rest: {} };
for (const c of cases) {
  const body = Buffer.from(c.body_b64, 'base64');
  let parsed = false;
  try {
    verifyAndParseWebhook(body, c.signature, secret);
    parsed = true;
  } catch (err) {
    parsed = false;
  }
  out.verify[c.name] = { verifyWebhook: client.verifyWebhook(body, c.signature), verifyAndParseWebhook: parsed };
}
out.tokens.user = client.createToken('tommaso');
out.tokens.userExp = client.createToken('ada', 4102444800);
out.tokens.server = JWTServerToken(secret);
try {
  out.tokens.gatewayServer = jwt.verify(gatewayToken, secret, { algorithms: ['HS256'] });
} catch (err) {
  out.tokens.gatewayServer = { error: String(err) };
}
try {
  jwt.verify(gatewayToken, secret + 'x', { algorithms: ['HS256'] });
  out.tokens.gatewayServerWrongSecret = 'accepted';
} catch (err) {
  out.tokens.gatewayServerWrongSecret = 'refused';
}

const channel = client.channel('messaging', 'general');
await client.partialUpdateMessage('m-1', { set: { text: 'hello' } }, 'callgate');
await channel.updatePartial({ set: { call: { id: 'c-1' } } });
await channel.sendEvent({ type: 'call.updated', user_id: 'callgate' });
out.rest = 'done';
console.log(JSON.stringify(out));
