// LiveKit's own JS SDKs checking callgate's LiveKit adapter. Reads one JSON
// request on stdin, writes one JSON answer on stdout after "CALLGATE-RESULT ". Modes:
//   verify  {apiKey, apiSecret, token}        TokenVerifier.verify → the claims
//   sign    {apiKey, apiSecret, body}         an Authorization header for body,
//                                             made as livekit-server signs webhooks
//                                             (AccessToken, sha256 claim, 5 min)
//   receive {apiKey, apiSecret, body, auth}   WebhookReceiver.receive → the event
//   join    {url, token, holdMs}              a real participant (@livekit/rtc-node)
//                                             joins, stays holdMs, leaves
import { createHash } from 'node:crypto';
import { AccessToken, TokenVerifier, WebhookReceiver } from 'livekit-server-sdk';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

async function run() {
  switch (req.mode) {
    case 'verify': {
      const claims = await new TokenVerifier(req.apiKey, req.apiSecret).verify(req.token);
      return { claims };
    }
    case 'sign': {
      const at = new AccessToken(req.apiKey, req.apiSecret, { ttl: '5m' });
      at.sha256 = createHash('sha256').update(req.body, 'utf8').digest('base64');
      return { auth: await at.toJwt() };
    }
    case 'receive': {
      try {
        const ev = await new WebhookReceiver(req.apiKey, req.apiSecret).receive(req.body, req.auth);
        return { ok: true, event: ev.toJson() };
      } catch (e) {
        return { ok: false, error: String(e && e.message || e) };
      }
    }
    case 'join': {
      const { Room } = await import('@livekit/rtc-node');
      const room = new Room();
      await room.connect(req.url, req.token, { autoSubscribe: true, dynacast: false });
      const me = room.localParticipant;
      const out = { room: room.name, identity: me.identity, name: me.name, metadata: me.metadata };
      await new Promise((r) => setTimeout(r, req.holdMs || 1000));
      await room.disconnect();
      return out;
    }
  }
  throw new Error(`unknown mode ${req.mode}`);
}

try {
  const out = await run();
  // rtc-node logs to stdout too; the answer is the line after the marker.
  process.stdout.write('CALLGATE-RESULT ' + JSON.stringify(out) + '\n');
  process.exit(0);
} catch (e) {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
}
