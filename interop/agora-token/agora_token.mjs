// Agora's own token library (agora-token) as an independent checker of
// callgate's AccessToken2 tokens. Used by adapters/agora's
// TestAgoraTokenInterop.
//
//   node agora_token.mjs decode <certificate> <token>...
//     parses each token with AccessToken2.from_string and prints what it
//     holds and whether verifySignature(certificate) accepts it.
//   node agora_token.mjs build <appId> <certificate>
//     builds tokens with fixed inputs (AccessToken2 with a set issueTs and
//     salt) and with the RtcTokenBuilder helpers, for callgate's decoder.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { RtcTokenBuilder, RtcRole } = require('agora-token')
const { AccessToken2, ServiceRtc, ServiceRtm } = require('agora-token/src/AccessToken2')

const [mode, ...args] = process.argv.slice(2)

function describe(token, certificate) {
  const t = new AccessToken2()
  if (!t.from_string(token)) {
    return { parsed: false }
  }
  return {
    parsed: true,
    verified: t.verifySignature(certificate),
    appId: t.appId.toString(),
    issueTs: t.issueTs,
    expire: t.expire,
    salt: t.salt,
    services: t.services.map(s => ({
      type: s.service_type(),
      privileges: Object.fromEntries(Object.entries(s.__privileges).map(([k, v]) => [k, v])),
      channel: s.__channel_name === undefined ? undefined : s.__channel_name.toString(),
      uid: s.__uid === undefined ? undefined : s.__uid.toString(),
      userId: s.__user_id === undefined ? undefined : s.__user_id.toString(),
    })),
  }
}

if (mode === 'decode') {
  const [certificate, ...tokens] = args
  console.log(JSON.stringify(tokens.map(t => describe(t, certificate))))
} else if (mode === 'build') {
  const [appId, certificate] = args
  // Fixed inputs: the same token callgate's builder makes from them, up to
  // the compressor's bytes.
  const fixed = new AccessToken2(appId, certificate, 1700000000, 3600)
  fixed.salt = 12345678
  const rtc = new ServiceRtc('call-1', 3374330892)
  for (const p of [ServiceRtc.kPrivilegeJoinChannel, ServiceRtc.kPrivilegePublishAudioStream, ServiceRtc.kPrivilegePublishVideoStream, ServiceRtc.kPrivilegePublishDataStream]) {
    rtc.add_privilege(p, 3600)
  }
  const rtm = new ServiceRtm('ada')
  rtm.add_privilege(ServiceRtm.kPrivilegeLogin, 3600)
  // Added RTM first: the builder must still pack services in type order.
  fixed.add_service(rtm)
  fixed.add_service(rtc)
  console.log(JSON.stringify({
    fixed: fixed.build(),
    publisher: RtcTokenBuilder.buildTokenWithUid(appId, certificate, 'call-1', 2882341273, RtcRole.PUBLISHER, 600, 600),
    subscriber: RtcTokenBuilder.buildTokenWithUid(appId, certificate, 'call-1', 7, RtcRole.SUBSCRIBER, 600, 600),
    withRtm: RtcTokenBuilder.buildTokenWithRtm2(appId, certificate, 'call-1', 42, RtcRole.PUBLISHER, 900, 900, 900, 900, 900, 'ada', 900),
  }))
} else {
  console.error('usage: agora_token.mjs decode <certificate> <token>... | build <appId> <certificate>')
  process.exit(2)
}
