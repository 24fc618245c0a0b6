// Twilio's own Node SDK checks callgate's Twilio Video adapter. Reads one
// JSON job on stdin, writes one JSON answer on stdout:
//
//   token:    the SDK's jwt.AccessToken built from the same inputs as the
//             gateway's token, at the same (frozen) time, both decoded; and
//             whether jsonwebtoken (the SDK's JWT library) verifies the
//             gateway's token with the API key secret.
//   validate: the SDK's validateRequest(authToken, signature, url, params)
//             on signatures the gateway's verifier accepted or refused.
//   sign:     the SDK's getExpectedTwilioSignature(authToken, url, params)
//             for the gateway's verifier to check.
import twilio from 'twilio';
import jsonwebtoken from 'jsonwebtoken';

const input = JSON.parse(await new Promise((resolve, reject) => {
  let data = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (c) => { data += c; });
  process.stdin.on('end', () => resolve(data));
  process.stdin.on('error', reject);
}));

const decode = (token) => {
  const { header, payload } = jsonwebtoken.decode(token, { complete: true });
  return { header, payload };
};

const t = input.token;
// Freeze the clock so jti, iat and exp come out as the gateway's did.
const realNow = Date.now;
Date.now = () => t.now_ms;
const at = new twilio.jwt.AccessToken(t.account_sid, t.key_sid, t.key_secret, { identity: t.identity, ttl: t.ttl });
at.addGrant(new twilio.jwt.AccessToken.VideoGrant({ room: t.room }));
const sdkToken = at.toJwt();
Date.now = realNow;

let goVerified = false;
let goVerifyError = '';
try {
  jsonwebtoken.verify(t.go_token, t.key_secret, { algorithms: ['HS256'], clockTimestamp: Math.floor(t.now_ms / 1000) + 1, issuer: t.key_sid, subject: t.account_sid });
  goVerified = true;
} catch (e) {
  goVerifyError = String(e && e.message);
}
let wrongSecretRefused = false;
try {
  jsonwebtoken.verify(t.go_token, t.key_secret + 'x', { algorithms: ['HS256'], clockTimestamp: Math.floor(t.now_ms / 1000) + 1 });
} catch {
  wrongSecretRefused = true;
}

const out = {
  token: {
    sdk_token: sdkToken,
    sdk: decode(sdkToken),
    go: decode(t.go_token),
    go_verified: goVerified,
    go_verify_error: goVerifyError,
    wrong_secret_refused: wrongSecretRefused,
  },
  validate: input.validate.map((c) => twilio.validateRequest(input.auth_token, c.signature, c.url, c.params)),
  sign: input.sign.map((c) => twilio.getExpectedTwilioSignature(input.auth_token, c.url, c.params)),
};
process.stdout.write(JSON.stringify(out));
