// Package emulator plays the IDlayr PhoneCheck API, the PlasGate IP
// Verification API and a mobile operator, for tests and the demo. It is the
// contract the verify providers are tested against. README.md in this
// directory is the full reference (every endpoint, field, chain, error and
// knob, with examples); this comment is its summary.
//
// # Serving
//
// New builds an Emulator and a test CA (ECDSA P-256); Serve(role, l, tls)
// answers one role on a listener the caller made (inside a network namespace,
// say) and returns at once; StartLoopback serves all three on 127.0.0.1:0.
// IDlayr and PlasGate are served over HTTPS, the operator over plain HTTP.
// The leaf names api.idlayr.test, cloudapi.plasgate.test, operator.test,
// Config.DNSNames, the hosts of the base URLs, 127.0.0.1, ::1 and every local
// address a TLS client reaches it on without SNI (added on demand); an unknown
// SNI name is never added. CAPEM, WriteCA and CertPool hand out the CA.
// Public base URLs (what check_url, Locations and self links carry) come from
// Config or SetBaseURL, else from the first listener served for the role.
// Accepted conns have TCP_NODELAY; every request body is capped at 64 KiB
// (413 beyond).
//
// # Operator
//
// The operator identifies a device only by the source address of the request
// it receives: Config.Subscribers (SetSubscriber) maps an address to an
// MSISDN; an address is mobile when it is mapped or inside
// Config.MobileRanges (SetMobileRanges). Every chain runs
//
//	provider https  →302→  http operator /op/P/start   (sets cookie OPSESSION, Path=/op/)
//	                →302 "hop2?sid=…" (path-relative)
//	                →      /op/P/hop2                   (400 without the cookie; identifies the source)
//	                →302→  provider https completion    (IDlayr …/checks/{id}/complete, PlasGate /ip/callback)
//
// where P is idlayr or plasgate. GET /op/whoami echoes what the operator sees.
//
// # IDlayr
//
// POST /oauth2/v1/token (Basic auth raw as the seed says, or RFC 6749
// form-escaped, or client_secret_post; scopes phone_check, coverage);
// POST /phone_check/{v0.1|v0.2}/checks → 201; GET …/checks/{id};
// PATCH /phone_check/v0.2/checks/{id} (application/json-patch+json, add
// /code); GET …/checks/{id}/redirect is the check_url;
// GET /coverage/v0.1/device_ip (also under /public). Match is the operator's
// MSISDN for the source equal to the check's phone_number. A non-mobile
// source at the check_url gets 412 not_mobile_ip and the check ends in
// ERROR with that error_code. A v0.2 chain ends with 200 {check_id, code},
// or 302 to redirect_url?check_id&code (errors: ?check_id&error&
// error_description). Errors are application/problem+json with type
// (ProblemTypeBase + code), title, status, detail and error_code.
//
// # PlasGate
//
// GET /ip/authenticate?private_key&login_hint(or phone_number)&redirect_uri
// &scope&state runs the chain and ends with 302 to
// redirect_uri?code&state&session_state, or ?error&error_description&state
// (access_denied for a non-mobile source, unauthorized_client for an unknown
// private_key, invalid_scope, invalid_request). POST /ip/ip-auth and
// /ip/check-info (X-Secret header; JSON body response_type, state,
// redirect_uri, code, private_key — or private_key in the query) answer the
// seed's result JSON, with claims per scope; codes are single-use.
//
// # Faults, sandbox, observations
//
// Faults (SetFaults per phone number, "" for the default; goroutine-safe and
// read per request) switch on redirect loops, over-long chains, slow hops,
// badly encoded Locations, 412/409/501, 400 mno_not_supported, 429 with
// Retry-After, 5xx and PENDING polls, EXPIRED, ERROR, and PlasGate state
// mismatch, ?error=, 403/500 on exchange and boolean phone_number_verified.
// IDlayr numbers SandboxPrefix+digit select an outcome by their last digit
// (see SandboxFaults). Stats counts tokens, checks, authorizations, codes and
// results; Requests lists every request (role, method, path, query and body
// key names, source, TLS, cookie and Authorization presence, status) and
// never a secret. Check shows a check's state. Config.Now lets tests move
// expiry forward without sleeping.
package emulator
