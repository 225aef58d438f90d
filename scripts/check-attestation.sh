#!/bin/sh
# Checks a glassbox "no hidden egress" attestation envelope with stock tools
# only: sed, grep, base64, printf, wc, date, sha256sum and openssl. No
# glassbox code, no jq. See docs/attestation.md ("Checking an envelope by hand").
#
#   scripts/check-attestation.sh ENVELOPE.json ROOTS NONCE [MAX_AGE_SECONDS]
#
# ROOTS is a PEM file of trusted root certificate(s), or the trust policy
# JSON (its "roots" are used). Exit 0 when every check passes, 1 when one
# fails, 2 for usage errors. Each step prints what it checked.
set -eu

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $0 ENVELOPE.json ROOTS.pem|POLICY.json NONCE [MAX_AGE_SECONDS]" >&2
  exit 2
fi
ENV=$1; ROOTS=$2; NONCE=$3; MAX_AGE=${4:-300}
[ -r "$ENV" ] || { echo "cannot read $ENV" >&2; exit 2; }
[ -r "$ROOTS" ] || { echo "cannot read $ROOTS" >&2; exit 2; }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok:   $*"; }

# 1. Fields of the envelope. It is canonical JSON on one line; base64 has no
#    characters JSON escapes, and the PEM chain's newlines are written "\n".
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$ENV"; }
TYPE=$(field payloadType)
PAYLOAD=$(field payload)
SIG=$(field sig)
CERTS=$(field certificates)
[ "$TYPE" = "application/vnd.in-toto+json" ] || fail "payloadType is '$TYPE'"
[ -n "$PAYLOAD" ] && [ -n "$SIG" ] && [ -n "$CERTS" ] || fail "envelope lacks payload, sig or certificates"
ok "envelope fields read (payloadType $TYPE)"

# 2. The document and DSSE's pre-authentication encoding:
#    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
printf '%s' "$PAYLOAD" | base64 -d > "$W/payload.json" || fail "payload is not base64"
printf '%s' "$SIG" | base64 -d > "$W/sig.der" || fail "sig is not base64"
LEN_TYPE=$(printf '%s' "$TYPE" | wc -c)
LEN_BODY=$(wc -c < "$W/payload.json")
printf 'DSSEv1 %d %s %d ' "$LEN_TYPE" "$TYPE" "$LEN_BODY" > "$W/pae.bin"
cat "$W/payload.json" >> "$W/pae.bin"
ok "PAE built ($LEN_BODY payload bytes)"

# 3. The chain: leaf first, then intermediates; the root comes from ROOTS.
printf '%b' "$CERTS" > "$W/chain.pem"
sed -n '1,/-----END CERTIFICATE-----/p' "$W/chain.pem" > "$W/leaf.pem"
if grep -q '^-----BEGIN CERTIFICATE-----' "$ROOTS"; then
  cp "$ROOTS" "$W/roots.pem"
else
  # Trust policy JSON: every "roots" entry is a PEM string.
  sed -n 's/.*"roots":\[\([^]]*\)\].*/\1/p' "$ROOTS" | sed 's/","/\n/g; s/^"//; s/"$//' > "$W/roots.esc"
  printf '%b' "$(cat "$W/roots.esc")" > "$W/roots.pem"
fi
grep -q 'BEGIN CERTIFICATE' "$W/roots.pem" || fail "no root certificate in $ROOTS"
openssl verify -x509_strict -purpose sslclient -CAfile "$W/roots.pem" -untrusted "$W/chain.pem" "$W/leaf.pem" > "$W/verify.out" 2>&1 \
  || fail "chain does not verify to a trusted root: $(cat "$W/verify.out")"
ok "device certificate chains to a trusted root (clientAuth)"

# 4. The leaf names the document's device and is the certificate it names.
DOC_ID=$(sed -n 's/.*"device":{"certificateSha256":"\([0-9a-f]*\)","hardware":\(null\|"[^"]*"\),"id":"\([^"]*\)"}.*/\3/p' "$W/payload.json")
DOC_CERT=$(sed -n 's/.*"device":{"certificateSha256":"\([0-9a-f]*\)".*/\1/p' "$W/payload.json")
LEAF_CN=$(openssl x509 -in "$W/leaf.pem" -noout -subject -nameopt RFC2253 | sed -n 's/^subject=.*CN=\([^,]*\).*/\1/p')
LEAF_SHA=$(openssl x509 -in "$W/leaf.pem" -outform DER | sha256sum | cut -d' ' -f1)
[ -n "$DOC_ID" ] && [ "$DOC_ID" = "$LEAF_CN" ] || fail "certificate CN '$LEAF_CN' is not the document's device '$DOC_ID'"
[ "$DOC_CERT" = "$LEAF_SHA" ] || fail "the document names another certificate ($DOC_CERT, leaf is $LEAF_SHA)"
ok "leaf certificate is device $LEAF_CN, as the document says"

# 5. The signature over the PAE (ECDSA DER; SHA-384 for a P-384 key, else SHA-256).
openssl x509 -in "$W/leaf.pem" -noout -pubkey > "$W/leaf.pub"
HASH=-sha256
if openssl pkey -pubin -in "$W/leaf.pub" -noout -text 2>/dev/null | grep -Eq 'secp384r1|P-384'; then HASH=-sha384; fi
openssl dgst "$HASH" -verify "$W/leaf.pub" -signature "$W/sig.der" "$W/pae.bin" > "$W/dgst.out" 2>&1 \
  || fail "signature does not verify: $(cat "$W/dgst.out")"
ok "signature verifies ($HASH)"

# 6. Nonce and freshness.
grep -q "\"nonce\":\"$NONCE\"" "$W/payload.json" || fail "the document's nonce is not $NONCE"
ok "nonce is the one sent"
ISSUED=$(sed -n 's/.*"issuedAt":"\([^"]*\)".*/\1/p' "$W/payload.json")
AGE=$(( $(date -u +%s) - $(date -u -d "$ISSUED" +%s) ))
[ "$AGE" -le "$MAX_AGE" ] || fail "issued $AGE s ago ($ISSUED), over $MAX_AGE s"
[ "$AGE" -ge -60 ] || fail "issuedAt $ISSUED is in the future"
ok "issued $AGE s ago ($ISSUED)"

VERDICT=$(sed -n 's/.*"verdict":"\([^"]*\)".*/\1/p' "$W/payload.json")
UNDECLARED=$(sed -n 's/.*"undeclared":\([0-9]*\).*/\1/p' "$W/payload.json")
echo "AUTHENTIC AND FRESH: device $DOC_ID, verdict $VERDICT, undeclared flows $UNDECLARED"
